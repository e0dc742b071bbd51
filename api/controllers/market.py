"""`/v1/bars`, `/v1/latest`, `/v1/asof`, `/v1/symbols`: views of the market built from the tick tables."""

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
    Fresh,
    Indexes,
    Limit,
    SnapshotId,
    Start,
    Symbols,
    as_of_time,
    meta,
    page_response,
)
from api.formats import negotiate, python_rows, respond
from api.types import AsOfPage, Bar, BarsPage, Instrument, InstrumentsPage, Latest, LatestPage, TradeWithQuote
from k2.query import (
    QueryError,
    bars,
    exchange_timezone,
    exchanges_of,
    instruments,
    latest_by_symbol,
    parse_interval,
    trades_with_quotes,
)
from k2.query.params import check_timezone, parse_list, time_range


class BarsController(Controller):
    path = "/bars"
    tags = ("market",)

    @get(sync_to_thread=True, summary="OHLCV bars with VWAP and trade count")
    def bars(
        self,
        request: Request,
        engine: Engine,
        indexes: Indexes,
        symbol: Annotated[str, Parameter(description="one symbol", min_length=1, max_length=64)],
        interval: Annotated[str, Parameter(description="1s .. 1d, 1w, 1mo (e.g. 1m, 5m, 1h, 1d)")] = "1m",
        exchange: Exchange = None,
        tz: Annotated[str | None, Parameter(description="IANA zone for bucketing (default: the exchange's)")] = None,
        start: Start = None,
        end: End = None,
        fill: Annotated[bool, Parameter(description="add empty intervals: previous close, zero volume")] = False,
        snapshot_id: SnapshotId = None,
        as_of: AsOf = None,
        freshness: Fresh = "committed",
        format: Format = None,
    ) -> Response[BarsPage]:
        """Buckets are cut on the exchange's local clock (a `1d` ASX bar is a Sydney trading day) and reported by
        their UTC start; open/close break same-microsecond ties by sequence."""
        fmt = negotiate(request, format)
        lo, hi = time_range(start, end)
        step = parse_interval(interval)
        if exchange is None:
            found = exchanges_of(engine, indexes, symbol)
            if len(found) > 1:
                raise QueryError(f"{symbol} trades on {', '.join(found)}: pass exchange=")
            exchange = found[0] if found else ""
        zone = check_timezone(tz) if tz else exchange_timezone(exchange)
        page = bars(
            engine,
            symbol,
            exchange,
            step,
            zone,
            start=lo,
            end=hi,
            fill=fill,
            snapshot_id=snapshot_id,
            as_of=as_of_time(as_of),
            realtime=freshness == "realtime",
        )
        return page_response(fmt, page, BarsPage, Bar, exchange=exchange, timezone=zone, interval=step.text)


class LatestController(Controller):
    path = "/latest"
    tags = ("market",)

    @get(sync_to_thread=True, summary="Last trade and last quote per instrument")
    def latest(
        self,
        request: Request,
        engine: Engine,
        indexes: Indexes,
        symbol: Symbols = None,
        exchange: Exchange = None,
        as_of: AsOf = None,
        freshness: Fresh = "committed",
        format: Format = None,
    ) -> Response[LatestPage]:
        """Kept per snapshot as data lands (no history scan per request)."""
        fmt = negotiate(request, format)
        rows, freshness = latest_by_symbol(
            engine,
            indexes,
            symbols=parse_list(symbol),
            exchange=exchange,
            as_of=as_of_time(as_of),
            realtime=freshness == "realtime",
        )
        trades, quotes = meta(freshness["trades"], rows.num_rows), meta(freshness["quotes"], rows.num_rows)
        body = None
        if fmt == "json":
            body = LatestPage(data=msgspec.convert(python_rows(rows), list[Latest]), trades=trades, quotes=quotes)
        return respond(fmt, rows, body, trades)


class AsOfController(Controller):
    path = "/asof"
    tags = ("market",)

    @get(sync_to_thread=True, summary="Trades with the quote prevailing at each (as-of join)")
    def asof(
        self,
        request: Request,
        engine: Engine,
        symbol: Annotated[str, Parameter(description="one symbol or a comma-separated list", min_length=1)],
        exchange: Exchange = None,
        start: Start = None,
        end: End = None,
        tolerance_ms: Annotated[int, Parameter(ge=0, le=86_400_000, description="oldest usable quote (ms)")] = 1_000,
        limit: Limit = 1_000,
        as_of: AsOf = None,
        format: Format = None,
    ) -> Response[AsOfPage]:
        """The quote is the newest of the instrument at or before the trade, within the tolerance;
        `spread` = ask - bid and `mid` = (bid + ask) / 2, exact."""
        fmt = negotiate(request, format)
        lo, hi = time_range(start, end)
        symbols = parse_list(symbol)
        if not symbols:
            raise QueryError("symbol is required")
        page, quotes = trades_with_quotes(
            engine,
            symbols,
            exchange=exchange,
            start=lo,
            end=hi,
            tolerance_us=tolerance_ms * 1_000,
            limit=limit,
            as_of=as_of_time(as_of),
        )
        return page_response(fmt, page, AsOfPage, TradeWithQuote, quotes=meta(quotes, page.rows.num_rows))


class SymbolsController(Controller):
    path = "/symbols"
    tags = ("market",)

    @get(sync_to_thread=True, summary="Every instrument with counts and first/last times")
    def symbols(
        self, request: Request, engine: Engine, indexes: Indexes, exchange: Exchange = None, format: Format = None
    ) -> Response[InstrumentsPage]:
        fmt = negotiate(request, format)
        rows = instruments(engine, indexes, exchange)
        body = InstrumentsPage(data=msgspec.convert(rows.to_pylist(), list[Instrument])) if fmt == "json" else None
        return respond(fmt, rows, body)
