"""`/v1/trades` and `/v1/quotes`: rows in a time range, paged by cursor, pinned to one snapshot."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get
from litestar.params import Parameter

from api.controllers.common import (
    AsOf,
    End,
    Engine,
    Exchange,
    Format,
    Limit,
    SnapshotId,
    Start,
    Symbols,
    as_of_time,
    meta,
)
from api.formats import negotiate, python_rows, respond
from api.types import QuoteRow, QuotesPage, TradeRow, TradesPage
from k2.catalog import QUOTES, TRADES
from k2.query import FIELDS, ticks_between
from k2.query.params import parse_fields, parse_list, time_range

Cursor = Annotated[str | None, Parameter(description="`meta.next_cursor` of the previous page", max_length=512)]
Fields = Annotated[str | None, Parameter(description="comma-separated columns to return (default: all)")]


def _ticks(name: str, page_type: type, row_type: type, request: Request, engine: Engine, **query) -> Response:
    fmt = negotiate(request, query.pop("format"))
    start, end = time_range(query.pop("start"), query.pop("end"))
    page = ticks_between(
        engine,
        name,
        symbols=parse_list(query.pop("symbol")),
        start=start,
        end=end,
        fields=parse_fields(query.pop("fields"), FIELDS[name]),
        as_of=as_of_time(query.pop("as_of")),
        **query,
    )
    info = meta(page.freshness, page.rows.num_rows, page.next_cursor)
    body = None
    if fmt == "json":
        body = page_type(data=msgspec.convert(python_rows(page.rows), list[row_type]), meta=info)
    return respond(fmt, page.rows, body, info)


class TradesController(Controller):
    path = "/trades"
    tags = ("ticks",)

    @get(sync_to_thread=True, summary="Trades in a time range")
    def trades(
        self,
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
        format: Format = None,
    ) -> Response[TradesPage]:
        """Oldest first. Follow `meta.next_cursor` for the next page: every page reads the same snapshot."""
        return _ticks(
            TRADES,
            TradesPage,
            TradeRow,
            request,
            engine,
            symbol=symbol,
            exchange=exchange,
            start=start,
            end=end,
            limit=limit,
            cursor=cursor,
            fields=fields,
            snapshot_id=snapshot_id,
            as_of=as_of,
            format=format,
        )


class QuotesController(Controller):
    path = "/quotes"
    tags = ("ticks",)

    @get(sync_to_thread=True, summary="Quotes in a time range")
    def quotes(
        self,
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
        format: Format = None,
    ) -> Response[QuotesPage]:
        """Oldest first; one-sided quotes have null sides, crossed ones are flagged."""
        return _ticks(
            QUOTES,
            QuotesPage,
            QuoteRow,
            request,
            engine,
            symbol=symbol,
            exchange=exchange,
            start=start,
            end=end,
            limit=limit,
            cursor=cursor,
            fields=fields,
            snapshot_id=snapshot_id,
            as_of=as_of,
            format=format,
        )
