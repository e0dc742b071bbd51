"""Helpers of the operational suite: a synthetic feed for a warehouse, and the answers the query engine gives."""

from __future__ import annotations

import pyarrow as pa

from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from k2.model.batch import RawBatch
from k2.ops.config import Settings
from k2.query import QueryEngine, Selection, instruments, latest_indexes, parse_interval, ticks_between
from k2.query.bars import bars
from k2.storage.catalog import QUOTES, TRADES


def synthetic_batches(settings: Settings, messages: int, seed: int = 7, batch_size: int = 500) -> list[RawBatch]:
    """The synthetic feed (invalid messages, duplicates, gaps, reordering) on the settings' topics."""
    config = FeedConfig(
        messages=messages,
        symbols=8,
        seed=seed,
        partitions=2,
        trades_topic=settings.trades_topic,
        quotes_topic=settings.quotes_topic,
    )
    return list(feed_batches(SyntheticFeed(config), batch_size=batch_size))


def all_rows(engine: QueryEngine, name: str, snapshot_id: int | None = None) -> pa.Table:
    """Every row of a tick table through the engine, paging with its cursor (one snapshot)."""
    pages, cursor = [], None
    while True:
        page = ticks_between(engine, name, Selection(snapshot_id=snapshot_id), limit=engine.max_rows, cursor=cursor)
        pages.append(page.rows)
        cursor = page.next_cursor
        if cursor is None:
            return pa.concat_tables(pages)


def answers(settings: Settings, snapshot_ids: dict[str, int] | None = None) -> dict[str, list[dict]]:
    """What a user would see: all trades and quotes, 1-minute bars of two symbols, latest per instrument (as
    Python rows: an empty table reads with the catalog's types or DuckDB's, the rows are what counts)."""
    engine = QueryEngine.from_settings(settings)
    try:
        pinned = snapshot_ids or {}
        result = {name: all_rows(engine, name, pinned.get(name)) for name in (TRADES, QUOTES)}
        trades = result[TRADES]
        pairs = sorted(set(zip(trades["exchange"].to_pylist(), trades["symbol"].to_pylist(), strict=True)))
        for exchange, symbol in pairs[:2]:
            page = bars(
                engine, Selection([symbol], exchange, snapshot_id=pinned.get(TRADES)), parse_interval("1m"), "UTC"
            )
            result[f"bars:{exchange}:{symbol}"] = page.rows
        if not pinned:
            result["instruments"] = instruments(engine, latest_indexes())
        return {key: table.to_pylist() for key, table in result.items()}
    finally:
        engine.close()


def snapshot_ids(settings: Settings) -> dict[str, int]:
    engine = QueryEngine.from_settings(settings)
    try:
        return {name: engine.plan(name)[1].snapshot_id for name in (TRADES, QUOTES)}
    finally:
        engine.close()
