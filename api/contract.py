"""What the OpenAPI document says beyond the handlers' signatures: the problem responses a route can send
(RFC 9457, `application/problem+json`) and the media types of a 200 other than JSON.

`data_route` is the `@get` of every `/v1` handler, so no route can leave them out.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema

from api.formats import MEDIA_TYPES

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details: how every error is sent."""

    status: int
    detail: str
    title: str | None = None
    type: str | None = None
    instance: str | None = None
    extra: list[dict[str, Any]] | None = None  # parameters that failed validation: key, source, message


PROBLEMS = {
    400: "A parameter is malformed (its schema here says what it takes), or the parameters together ask what the "
    "data cannot answer: a symbol on several exchanges without `exchange`; `freshness=realtime` pinned to a snapshot "
    "or cursor. `detail` says which.",
    401: "No API key: send one in the `X-API-Key` header.",
    403: "This API key is not accepted.",
    404: "What the request names does not exist: a `snapshot_id` this table does not have (expired, or never was), "
    "no snapshot at or before `as_of`, or a `cursor` that points to no page. `detail` says which.",
    409: "`freshness=realtime` on a service without a Kafka tail (`K2_KAFKA_BOOTSTRAP`): ask for committed data.",
    429: "Over this key's rate limit; `Retry-After` says in how many seconds to try again.",
    500: "The query failed, or the service did; `detail` says what can be said.",
}
# The parameters that can name what does not exist (404), and ask for realtime reads (409), by handler argument.
NAMING = {"as_of_us", "snapshot_id", "cursor"}
REALTIME = "realtime"


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=Problem, description=PROBLEMS[status], media_type=PROBLEM_MEDIA_TYPE, generate_examples=False
        )
        for status in statuses
    }


def route_problems(handler: Callable[..., Any]) -> tuple[int, ...]:
    """The problem statuses of a handler: those of every route, 404 and 409 where its arguments can lead to them."""
    names = set(inspect.signature(handler).parameters)
    statuses = {400, 401, 403, 429, 500}
    if names & NAMING:
        statuses.add(404)
    if REALTIME in names:
        statuses.add(409)
    return tuple(sorted(statuses))


_BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
_TEXT = Schema(type=OpenAPIType.STRING)


def _media_schema(media_type: str) -> Schema:
    return _TEXT if media_type.startswith("text/") else _BINARY


@dataclass
class TabularOperation(Operation):
    """A route answering in the negotiated format: its 200 is JSON, CSV, Parquet or an Arrow stream."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse) and ok.content is not None:
            for media_type in list(MEDIA_TYPES.values())[1:]:
                ok.content.setdefault(media_type, OpenAPIMediaType(schema=_media_schema(media_type)))


def streamed_operation(*media_types: str) -> type[Operation]:
    """An Operation whose 200 is a stream of one of `media_types` (Litestar documents a `Stream` as JSON)."""

    @dataclass
    class StreamedOperation(Operation):
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get("200")
            if isinstance(ok, OpenAPIResponse):
                ok.content = {media: OpenAPIMediaType(schema=_media_schema(media)) for media in media_types}

    return StreamedOperation


def data_route(
    summary: str, *, operation_class: type[Operation] = TabularOperation, **kwargs: Any
) -> Callable[[Callable[..., Any]], HTTPRouteHandler]:
    """`@get` for a `/v1` handler: run in a thread (DuckDB blocks), its problem responses and 200 media documented."""

    def route(handler: Callable[..., Any]) -> HTTPRouteHandler:
        responses = problem_responses(*route_problems(handler))
        options = {"summary": summary, "responses": responses, "operation_class": operation_class, **kwargs}
        return get(sync_to_thread=True, **options)(handler)

    return route
