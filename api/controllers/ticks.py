"""`/v1/trades` and `/v1/quotes`: rows in a time range, paged by cursor, pinned to one snapshot."""

from typing import Annotated

from litestar import Controller, Request, Response, get
from litestar.params import Parameter

from api.controllers.common import (
    AsOf,
    End,
    Engine,
    Exchange,
    Format,
    Fresh,
    Limit,
    SnapshotId,
    Start,
    Symbols,
    as_of_time,
    page_response,
)
from api.formats import negotiate
from api.types import QuoteRow, QuotesPage, TradeRow, TradesPage
from k2.query import ticks_between
from k2.query.params import parse_list, time_range
from k2.storage.catalog import QUOTES, TRADES

Cursor = Annotated[str | None, Parameter(description="`meta.next_cursor` of the previous page", max_length=512)]
Fields = Annotated[
    str | None,
    Parameter(description="comma-separated columns to return (default: all, including columns added to the table)"),
]


def tick_controller(name: str, page_type: type, row_type: type, summary: str, description: str) -> type[Controller]:
    """The controller of one tick table: both tables take the same parameters and page the same way."""

    @get(sync_to_thread=True, summary=summary, description=description, name=name)
    def handler(
        self: Controller,
        request: Request,
        engine: Engine,
        symbol: Symbols = None,
        exchange: Exchange = None,
        start: Start = None,
        end: End = None,
        limit: Limit = 1_000,
        cursor: Cursor = None,
        fields: Fields = None,
        snapshot_id: SnapshotId = None,
        as_of: AsOf = None,
        freshness: Fresh = "committed",
        format: Format = None,
    ) -> Response[page_type]:  # type: ignore[valid-type]  (evaluated now: this module has no lazy annotations)
        fmt = negotiate(request, format)
        lo, hi = time_range(start, end)
        page = ticks_between(
            engine,
            name,
            symbols=parse_list(symbol),
            exchange=exchange,
            start=lo,
            end=hi,
            limit=limit,
            cursor=cursor,
            fields=parse_list(fields),  # checked against the table's columns, added ones included
            snapshot_id=snapshot_id,
            as_of=as_of_time(as_of),
            realtime=freshness == "realtime",
        )
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
