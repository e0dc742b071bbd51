"""`/v1/snapshots`, `/v1/gaps`, `/v1/dead-letters`: the bookkeeping a user checks before trusting the data."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response
from litestar.openapi.spec import Operation
from litestar.params import Parameter

from api.contract import data_route
from api.controllers.common import Engine, page_response
from api.params import Fmt, Limit, Rows, Table, Window
from api.types import DeadLetter, DeadLettersPage, GapsPage, SequenceGap, Snapshot, SnapshotsPage
from k2.query import dead_letters, sequence_gaps, snapshots


class SnapshotsController(Controller):
    path = "/snapshots"
    tags = ("bookkeeping",)

    @data_route("A table's snapshots, newest first, with their Kafka offsets", operation_class=Operation)
    def snapshots(
        self, engine: Engine, table: Table = "trades", limit: Annotated[int, Parameter(ge=1, le=10_000)] = 100
    ) -> SnapshotsPage:
        found = snapshots(engine, table, limit)
        return SnapshotsPage(table=table, data=msgspec.convert(found, list[Snapshot]))


class GapsController(Controller):
    path = "/gaps"
    tags = ("bookkeeping",)

    @data_route("Sequence gaps and resets")
    def gaps(
        self,
        engine: Engine,
        fmt: Fmt,
        selection: Rows,
        limit: Limit = 1_000,
    ) -> Response[GapsPage]:
        page = sequence_gaps(engine, selection, limit=limit)
        return page_response(fmt, page, GapsPage, SequenceGap)


class DeadLettersController(Controller):
    path = "/dead-letters"
    tags = ("bookkeeping",)

    @data_route("Rejected messages with reason and source position")
    def dead_letters(
        self,
        engine: Engine,
        fmt: Fmt,
        window: Window,
        reason: Annotated[str | None, Parameter(description="a reason or its prefix, e.g. `missing_field`")] = None,
        topic: Annotated[str | None, Parameter(description="source topic")] = None,
        limit: Limit = 1_000,
    ) -> Response[DeadLettersPage]:
        """`raw` is the message exactly as received (base64 in JSON)."""
        page = dead_letters(engine, reason=reason, topic=topic, start=window.start, end=window.end, limit=limit)
        return page_response(fmt, page, DeadLettersPage, DeadLetter)
