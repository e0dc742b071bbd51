"""The Litestar application: `/v1` data routes behind API keys and a per-key rate limit, health, metrics, docs.

Resources live for the app's lifetime (lifespan): one `QueryEngine` (catalog, plan cache, DuckDB) and the
latest-per-instrument indexes, handed to handlers by dependency injection.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Request, Response, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import TooManyRequestsException, ValidationException
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException, ProblemDetailsPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from api.auth import ApiKeys, rate_limit_identity, require_api_key
from api.controllers.health import HealthController
from api.controllers.market import AsOfController, BarsController, LatestController, SymbolsController
from api.controllers.page import page_router
from api.controllers.records import DeadLettersController, GapsController, SnapshotsController
from api.controllers.replay import ReplayController
from api.controllers.ticks import QuotesController, TradesController
from api.params import DEPENDENCIES
from k2.ops.config import Settings, load_settings
from k2.query import Conflict, LatestIndex, NotFound, QueryEngine, QueryError, QueryFailed, latest_indexes
from k2.query.hybrid import start_follower

OPEN_PATHS = ["/health", "/ready", "/metrics", "/schema", "/page"]  # no key, no rate limit, not measured
log = logging.getLogger(__name__)


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def create_app(settings: Settings | None = None, engine: QueryEngine | None = None) -> Litestar:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = engine is None
        app.state.engine = engine or QueryEngine.from_settings(settings)
        app.state.indexes = latest_indexes()
        # Warm the latest-per-instrument indexes off the request path: the first build scans each table once.
        follower = start_follower(settings, app.state.engine)
        warming = threading.Thread(target=_warm, args=(app.state.engine, app.state.indexes), daemon=True)
        warming.start()
        try:
            yield
        finally:
            warming.join(timeout=60)  # its DuckDB cursor must be done before the connection closes
            if follower is not None:
                follower.stop()
            if owned:
                app.state.engine.close()

    v1 = Router(
        "/v1",
        route_handlers=[
            TradesController,
            QuotesController,
            BarsController,
            LatestController,
            AsOfController,
            SymbolsController,
            SnapshotsController,
            GapsController,
            DeadLettersController,
            ReplayController,
        ],
        guards=[require_api_key],
        security=[{"apiKey": []}],
        dependencies=DEPENDENCIES,
    )
    middleware = [PrometheusConfig(app_name="k2", prefix="k2_api", group_path=True, exclude=OPEN_PATHS).middleware]
    if settings.api_rate_limit:
        limit = RateLimitConfig(
            rate_limit=("second", settings.api_rate_limit),
            exclude=OPEN_PATHS,
            identifier_for_request=rate_limit_identity,
        )
        middleware.insert(0, limit.middleware)
    problems = ProblemDetailsConfig(
        enable_for_all_http_exceptions=True,
        exception_to_problem_detail_map={
            QueryError: lambda exc: ProblemDetailsException(status_code=400, detail=str(exc), title="Bad Request"),
            NotFound: lambda exc: ProblemDetailsException(status_code=404, detail=str(exc), title="Not Found"),
            Conflict: lambda exc: ProblemDetailsException(status_code=409, detail=str(exc), title="Conflict"),
            QueryFailed: lambda exc: ProblemDetailsException(status_code=500, detail=str(exc), title="Query failed"),
            ValidationException: _invalid_parameters,
            Exception: _internal_error,
        },
    )
    return Litestar(
        route_handlers=[v1, HealthController, MetricsController, page_router()],
        lifespan=[lifespan],
        state=State({"api_keys": ApiKeys(settings.api_keys), "settings": settings}),
        dependencies={
            "engine": Provide(_engine, sync_to_thread=False),
            "indexes": Provide(_indexes, sync_to_thread=False),
        },
        middleware=middleware,
        plugins=[ProblemDetailsPlugin(problems)],
        exception_handlers={TooManyRequestsException: _too_many_requests},
        openapi_config=OpenAPIConfig(
            title="K2 market data",
            version="1",
            description="Trades and quotes from Iceberg: every result names the snapshot it read.",
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header")
                }
            ),
        ),
    )


def _engine(state: State) -> QueryEngine:
    return state.engine


def _indexes(state: State) -> dict[str, LatestIndex]:
    return state.indexes


def _warm(engine: QueryEngine, indexes: dict[str, LatestIndex]) -> None:
    for index in indexes.values():
        # A broken table must not stop the service; the requests that need it report the error.
        with contextlib.suppress(Exception):
            index.state(engine)


def _invalid_parameters(exc: ValidationException) -> ProblemDetailsException:
    """Litestar's own parameter checks: `detail` names each parameter and what was wrong with it."""
    issues = [issue for issue in exc.extra if isinstance(issue, dict)] if isinstance(exc.extra, list) else []
    detail = "; ".join(f"{issue.get('key')}: {issue.get('message')}" for issue in issues)
    return ProblemDetailsException(status_code=400, title=exc.detail, detail=detail or "Bad Request", extra=exc.extra)


def _internal_error(exc: Exception) -> ProblemDetailsException:
    """Anything unforeseen is a 500 problem too (as documented), logged here, its text kept from the client."""
    log.error("unhandled error answering a request", exc_info=exc)
    return ProblemDetailsException(status_code=500, title="Internal Server Error", detail="the service failed")


def _too_many_requests(request: Request, exc: TooManyRequestsException) -> Response:
    """RFC 9457 body plus `Retry-After` (Litestar sends only the RateLimit-* headers)."""
    headers = dict(exc.headers or {})
    reset = headers.get("RateLimit-Reset", "1")
    headers["Retry-After"] = str(max(1, int(reset) if reset.lstrip("-").isdigit() else 1))
    problem = ProblemDetailsException(status_code=429, detail="rate limit exceeded for this API key", headers=headers)
    return problem.to_response(request)
