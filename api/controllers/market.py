"""`/v1/bars`, `/v1/latest`, `/v1/asof`, `/v1/symbols`: views of the market built from the tick tables."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response
from litestar.params import Parameter

from api.contract import data_route
from api.controllers.common import Engine, Indexes, meta, page_response
from api.formats import python_rows, respond
from api.params import (
    AsOfTime,
    BarInterval,
    Exchange,
    Fmt,
    Limit,
    Realtime,
    SnapshotId,
    SymbolList,
    SymbolsFilter,
    Window,
    Zone,
)
from api.types import AsOfPage, Bar, BarsPage, Instrument, InstrumentsPage, Latest, LatestPage, TradeWithQuote
from k2.query import (
    QueryError,
    Selection,
    bars,
    exchange_timezone,
    exchanges_of,
    instruments,
    latest_by_symbol,
    parse_interval,
    trades_with_quotes,
)
from k2.query.params import check_timezone, parse_list


class BarsController(Controller):
    path = "/bars"
    tags = ("market",)

    @data_route("OHLCV bars with VWAP and trade count")
    def bars(
        self,
        engine: Engine,
        indexes: Indexes,
        fmt: Fmt,
        window: Window,
        as_of_us: AsOfTime,
        realtime: Realtime,
        symbol: Annotated[str, Parameter(description="one symbol", min_length=1, max_length=64)],
        interval: BarInterval = "1m",
        exchange: Exchange = None,
        tz: Zone = None,
        fill: Annotated[
            bool,
            Parameter(
                description="add empty intervals (previous close, zero volume) up to `start`/`end`, or without "
                "them to the first/last bar found"
            ),
        ] = False,
        snapshot_id: SnapshotId = None,
    ) -> Response[BarsPage]:
        """Buckets are cut on the exchange's local clock (a `1d` ASX bar is a Sydney trading day) and reported by
        their UTC start; open/close break same-microsecond ties by sequence."""
        step = parse_interval(interval)
        if exchange is None:
            found = exchanges_of(engine, indexes, symbol)
            if len(found) > 1:
                raise QueryError(f"{symbol} trades on {', '.join(found)}: pass exchange=")
            exchange = found[0] if found else ""
        zone = check_timezone(tz) if tz else exchange_timezone(exchange)
        selection = Selection([symbol], exchange, window.start, window.end, snapshot_id, as_of_us, realtime)
        page = bars(engine, selection, step, zone, fill=fill)
        return page_response(
            fmt, page, BarsPage, Bar, limit=engine.max_rows, exchange=exchange, timezone=zone, interval=step.text
        )


class LatestController(Controller):
    path = "/latest"
    tags = ("market",)

    @data_route("Last trade and last quote per instrument")
    def latest(
        self,
        engine: Engine,
        indexes: Indexes,
        fmt: Fmt,
        symbols: SymbolsFilter,
        as_of_us: AsOfTime,
        realtime: Realtime,
        exchange: Exchange = None,
    ) -> Response[LatestPage]:
        """Kept per snapshot as data lands (no history scan per request)."""
        rows, freshness = latest_by_symbol(
            engine, indexes, symbols=symbols, exchange=exchange, as_of=as_of_us, realtime=realtime
        )
        trades, quotes = meta(freshness["trades"], rows.num_rows), meta(freshness["quotes"], rows.num_rows)
        body = None
        if fmt == "json":
            body = LatestPage(data=msgspec.convert(python_rows(rows), list[Latest]), trades=trades, quotes=quotes)
        return respond(fmt, rows, body, trades)


class AsOfController(Controller):
    path = "/asof"
    tags = ("market",)

    @data_route("Trades with the quote prevailing at each (as-of join)")
    def asof(
        self,
        engine: Engine,
        fmt: Fmt,
        window: Window,
        as_of_us: AsOfTime,
        symbol: SymbolList,
        exchange: Exchange = None,
        tolerance_ms: Annotated[int, Parameter(ge=0, le=86_400_000, description="oldest usable quote (ms)")] = 1_000,
        limit: Limit = 1_000,
    ) -> Response[AsOfPage]:
        """The quote is the newest of the instrument at or before the trade, within the tolerance;
        `spread` = ask - bid and `mid` = (bid + ask) / 2, exact."""
        selection = Selection(parse_list(symbol), exchange, window.start, window.end, as_of=as_of_us)
        page, quotes = trades_with_quotes(engine, selection, tolerance_us=tolerance_ms * 1_000, limit=limit)
        return page_response(fmt, page, AsOfPage, TradeWithQuote, quotes=meta(quotes, page.rows.num_rows))


class SymbolsController(Controller):
    path = "/symbols"
    tags = ("market",)

    @data_route("Every instrument with counts and first/last times")
    def symbols(
        self, engine: Engine, indexes: Indexes, fmt: Fmt, exchange: Exchange = None
    ) -> Response[InstrumentsPage]:
        rows = instruments(engine, indexes, exchange)
        body = InstrumentsPage(data=msgspec.convert(rows.to_pylist(), list[Instrument])) if fmt == "json" else None
        return respond(fmt, rows, body)
