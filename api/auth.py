"""API keys: kept only as SHA-256 digests, compared in constant time; a guard on every /v1 route.

No key is `401`, a wrong key is `403`. With no keys configured the service makes one at start and logs it, so a
fresh install is never open to everyone.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

HEADER = "X-API-Key"
log = logging.getLogger(__name__)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    def __init__(self, configured: str):
        entries = [part.strip() for part in configured.split(",") if part.strip()]
        self.generated: str | None = None
        if not entries:
            self.generated = secrets.token_urlsafe(24)
            entries = [self.generated]
            log.warning("K2_API_KEYS is empty: this run accepts the generated key %s", self.generated)
        self._digests = [e.removeprefix("sha256:").lower() if e.startswith("sha256:") else digest(e) for e in entries]

    def accepts(self, key: str) -> bool:
        presented = digest(key)
        # Compare with every digest, so timing says nothing about which (or whether one) matched.
        matches = [hmac.compare_digest(presented, known) for known in self._digests]
        return any(matches)


def require_api_key(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    key = connection.headers.get(HEADER)
    if not key:
        raise NotAuthorizedException(f"send an API key in the {HEADER} header")
    keys: ApiKeys = connection.app.state.api_keys
    if not keys.accepts(key):
        raise PermissionDeniedException("this API key is not accepted")


def rate_limit_identity(connection: ASGIConnection) -> str:
    """Rate limits count per key (by digest, never the key itself); requests without one share a bucket."""
    key = connection.headers.get(HEADER)
    return "key:" + digest(key)[:32] if key else "anonymous"
