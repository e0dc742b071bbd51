"""Trades joined to the quote prevailing when each printed (an as-of join), with spread and mid.

The prevailing quote is the newest one of the same instrument at or before the trade's time, no older than the
tolerance; among quotes in one microsecond the one later in the feed wins. Spread and mid are exact decimals.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec

from k2.query.engine import Freshness, QueryEngine, Selection, to_datetime
from k2.query.params import QueryError
from k2.query.ticks import Page, where
from k2.storage.catalog import QUOTES, TRADES

_ASOF = """
WITH t AS (
    SELECT exchange, symbol, "timestamp", trade_id, price, quantity, side, source_sequence
    FROM {trades} WHERE {trade_where}
), q AS (
    SELECT exchange, symbol, "timestamp" AS quote_timestamp, quote_id, bid_price, bid_quantity, ask_price,
           ask_quantity
    FROM {quotes} WHERE {quote_where}
    QUALIFY row_number() OVER (PARTITION BY exchange, symbol, "timestamp"
                               ORDER BY source_sequence DESC, source_topic DESC, source_partition DESC,
                                        source_offset DESC) = 1
), joined AS (
    SELECT t.*, q.* EXCLUDE (exchange, symbol)
    FROM t ASOF LEFT JOIN q ON t.exchange = q.exchange AND t.symbol = q.symbol AND t."timestamp" >= q.quote_timestamp
)
SELECT * EXCLUDE (fresh, quote_timestamp, quote_id, bid_price, bid_quantity, ask_price, ask_quantity),
       CASE WHEN fresh THEN quote_timestamp END AS quote_timestamp,
       CASE WHEN fresh THEN quote_id END AS quote_id,
       CASE WHEN fresh THEN bid_price END AS bid_price,
       CASE WHEN fresh THEN bid_quantity END AS bid_quantity,
       CASE WHEN fresh THEN ask_price END AS ask_price,
       CASE WHEN fresh THEN ask_quantity END AS ask_quantity,
       CASE WHEN fresh THEN ask_price - bid_price END AS spread,
       CASE WHEN fresh THEN (bid_price + ask_price) * 0.5 END AS mid
FROM (SELECT *, "timestamp" - quote_timestamp <= $tolerance AS fresh FROM joined)
ORDER BY "timestamp", exchange, symbol, source_sequence
LIMIT $limit
"""


def trades_with_quotes(
    engine: QueryEngine,
    selection: Selection,
    *,
    tolerance_us: int = 1_000_000,
    limit: int = 1_000,
    snapshot_ids: dict[str, int] | None = None,
) -> tuple[Page, Freshness]:
    """Trades of the selection with the prevailing quote; returns the page and the quotes' freshness. The two
    tables are pinned by `snapshot_ids` (one id per table), or by the selection's `as_of`."""
    if not selection.symbols:
        raise QueryError("symbol is required")
    if selection.realtime or selection.snapshot_id is not None:
        raise QueryError("as-of joins read committed snapshots, pinned per table by snapshot_ids")
    pinned = snapshot_ids or {}
    trades = engine.scan(TRADES, msgspec.structs.replace(selection, snapshot_id=pinned.get(TRADES)))
    quote_start = None if selection.start is None else selection.start - tolerance_us
    quoted = msgspec.structs.replace(selection, start=quote_start, snapshot_id=pinned.get(QUOTES))
    quotes = engine.scan(QUOTES, quoted)
    trade_params: dict[str, Any] = {}
    trade_where = where(trades, trade_params)
    quote_params: dict[str, Any] = {}
    quote_where = where(quotes, quote_params)
    # The two scans share filter names; the quotes' start differs by the tolerance (so the trades' `start` wins).
    if quote_start is not None:
        quote_params["quote_start"] = to_datetime(quote_start)
        quote_where = quote_where.replace('"timestamp" >= $start', '"timestamp" >= $quote_start')
    params = {**quote_params, **trade_params, "tolerance": timedelta(microseconds=tolerance_us), "limit": limit}
    sql = _ASOF.format(trade_where=trade_where, quote_where=quote_where, trades="{trades}", quotes="{quotes}")
    rows = engine.execute(sql, params, {"trades": trades, "quotes": quotes})
    return Page(rows, Freshness.of(trades.plan)), Freshness.of(quotes.plan)
