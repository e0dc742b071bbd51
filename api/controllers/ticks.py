"""`/v1/trades` and `/v1/quotes`: rows in a time range, paged by cursor, pinned to one snapshot."""

from typing import Annotated

import msgspec
from litestar import Controller, Response
from litestar.params import Parameter

from api.contract import data_route
from api.controllers.common import Engine, page_response
from api.params import AsOfTime, Fmt, Limit, Realtime, Rows, SnapshotId
from api.types import QuoteRow, QuotesPage, TradeRow, TradesPage
from k2.query import FIELDS, ticks_between
from k2.query.params import CURSOR_PATTERN, list_pattern, parse_list
from k2.storage.catalog import QUOTES, TRADES

Cursor = Annotated[
    str | None,
    Parameter(
        description="`meta.next_cursor` of the previous page, as given (none: the first page)",
        max_length=512,
        schema_extra={"pattern": CURSOR_PATTERN},  # what the encoder makes: URL-safe base64 of a msgpack array
    ),
]


def tick_controller(name: str, page_type: type, row_type: type, summary: str, description: str) -> type[Controller]:
    """The controller of one tick table: both tables take the same parameters and page the same way."""
    fields_type = Annotated[
        str | None,
        Parameter(
            description="comma-separated columns to return (default: all); columns added to the table later are "
            "taken too, though the pattern here lists only the table's own",
            schema_extra={"pattern": list_pattern(FIELDS[name])},
        ),
    ]

    @data_route(summary, description=description, name=name)
    def handler(
        self: Controller,
        engine: Engine,
        fmt: Fmt,
        selection: Rows,
        as_of_us: AsOfTime,
        realtime: Realtime,
        limit: Limit = 1_000,
        cursor: Cursor = None,
        fields: fields_type = None,
        snapshot_id: SnapshotId = None,
    ) -> Response[page_type]:  # type: ignore[valid-type]  (evaluated now: this module has no lazy annotations)
        version = msgspec.structs.replace(selection, snapshot_id=snapshot_id, as_of=as_of_us, realtime=realtime)
        fields_asked = parse_list(fields)  # checked against the table's columns, added ones included
        page = ticks_between(engine, name, version, limit=limit, cursor=cursor, fields=fields_asked)
        return page_response(fmt, page, page_type, row_type)

    return type(f"{name.title()}Controller", (Controller,), {"path": f"/{name}", "tags": ("ticks",), name: handler})


TradesController = tick_controller(
    TRADES,
    TradesPage,
    TradeRow,
    "Trades in a time range",
    "Oldest first. Follow `meta.next_cursor` for the next page: every page reads the same snapshot.",
)
QuotesController = tick_controller(
    QUOTES,
    QuotesPage,
    QuoteRow,
    "Quotes in a time range",
    "Oldest first; one-sided quotes have null sides, crossed ones are flagged. Pages as /v1/trades.",
)
