"""`/v1/snapshots`, `/v1/gaps`, `/v1/dead-letters`: the bookkeeping a user checks before trusting the data."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get
from litestar.params import Parameter

from api.controllers.common import End, Engine, Exchange, Format, Limit, Start, Symbols, page_response
from api.formats import negotiate
from api.types import DeadLetter, DeadLettersPage, GapsPage, SequenceGap, Snapshot, SnapshotsPage
from k2.query import dead_letters, sequence_gaps, snapshots
from k2.query.params import parse_list, time_range
from k2.storage.catalog import TABLE_NAMES


class SnapshotsController(Controller):
    path = "/snapshots"
    tags = ("bookkeeping",)

    @get(sync_to_thread=True, summary="A table's snapshots, newest first, with their Kafka offsets")
    def snapshots(
        self,
        engine: Engine,
        table: Annotated[str, Parameter(description=f"one of {', '.join(TABLE_NAMES)}")] = "trades",
        limit: Annotated[int, Parameter(ge=1, le=10_000)] = 100,
    ) -> SnapshotsPage:
        found = snapshots(engine, table, limit)
        return SnapshotsPage(table=table, data=msgspec.convert(found, list[Snapshot]))


class GapsController(Controller):
    path = "/gaps"
    tags = ("bookkeeping",)

    @get(sync_to_thread=True, summary="Sequence gaps and resets")
    def gaps(
        self,
        request: Request,
        engine: Engine,
        symbol: Symbols = None,
        exchange: Exchange = None,
        start: Start = None,
        end: End = None,
        limit: Limit = 1_000,
        format: Format = None,
    ) -> Response[GapsPage]:
        fmt = negotiate(request, format)
        lo, hi = time_range(start, end)
        page = sequence_gaps(engine, symbols=parse_list(symbol), exchange=exchange, start=lo, end=hi, limit=limit)
        return page_response(fmt, page, GapsPage, SequenceGap)


class DeadLettersController(Controller):
    path = "/dead-letters"
    tags = ("bookkeeping",)

    @get(sync_to_thread=True, summary="Rejected messages with reason and source position")
    def dead_letters(
        self,
        request: Request,
        engine: Engine,
        reason: Annotated[str | None, Parameter(description="a reason or its prefix, e.g. `missing_field`")] = None,
        topic: Annotated[str | None, Parameter(description="source topic")] = None,
        start: Start = None,
        end: End = None,
        limit: Limit = 1_000,
        format: Format = None,
    ) -> Response[DeadLettersPage]:
        """`raw` is the message exactly as received (base64 in JSON)."""
        fmt = negotiate(request, format)
        lo, hi = time_range(start, end)
        page = dead_letters(engine, reason=reason, topic=topic, start=lo, end=hi, limit=limit)
        return page_response(fmt, page, DeadLettersPage, DeadLetter)
