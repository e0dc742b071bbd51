"""Per-component figures with pytest-benchmark: each step of the flow timed on its own, beside the end-to-end
scripts in `benchmarks/` (which time the whole flow against a plain loop).

    uv run pytest tests/performance/ --benchmark-only          # the figures (a minute or so on 2 cores)
    uv run pytest tests/performance/                            # each benchmark once, untimed (tests/conftest.py)

Input: one partition of synthetic trades (`k2.loaders.synthetic`: invalid messages, duplicates, gaps, reordering), 5,000
messages, the flow's batch size. Every benchmark checks its result against an oracle computed from its own input
with the standard library's `json` (never with the code under test), so a step that did nothing, or something
else, fails instead of reporting a fast time.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from k2.ingest.columnar import ArrowBatch, to_arrow
from k2.ingest.dedupe import Deduper
from k2.ingest.sequence import SequenceTracker
from k2.ingest.validate import Rules, validate_batch
from k2.loaders.synthetic import FeedConfig, SyntheticFeed
from k2.model.batch import IngestBatch, RawBatch
from k2.query import Page, QueryEngine, Selection, ticks_between
from k2.storage.catalog import DEAD_LETTERS, TABLE_PROPERTIES, TRADES, open_catalog, read_table
from k2.storage.seams import committed_offsets
from k2.storage.writer import IcebergWriter

# At least 20 rounds where pytest-benchmark's calibration would settle for 5 (the machine is shared: the median
# of more rounds moves less); the sequence check and the Iceberg commit set their own.
pytestmark = [pytest.mark.performance, pytest.mark.benchmark(min_rounds=20)]

BATCH = 5_000  # messages per batch: the flow's batch size (benchmarks/ingest.py --batch-size)
TOPIC = "synthetic.trades"
COMMIT_ROUNDS = 12  # Iceberg commits timed (each of a new batch: a re-sent one would be filtered by the seam)
QUERY_BATCHES = 12  # point-query warehouse: 60,000 messages, ~2 minutes of trades over 20 symbols,
QUERY_FILES = 4  # committed every 15,000 (and the first batch at once: 5 commits)
MINUTE_US = 60_000_000


class Feed(msgspec.Struct):
    """Raw batches of one partition of synthetic trades, and what an independent reading of their bytes says."""

    batches: list[RawBatch]
    valid: list[dict[str, Any]]  # messages the stdlib `json` reads with a sequence number (the feed's valid ones)
    invalid: int  # what the feed says it broke


def trade_feed(messages: int, *, symbols: int = 50, seed: int = 7) -> Feed:
    feed = SyntheticFeed(
        FeedConfig(messages=messages, symbols=symbols, quote_ratio=0.0, partitions=1, seed=seed, trades_topic=TOPIC)
    )
    values = [value for _, _, value in feed.messages()]
    batches = [
        RawBatch(TOPIC, 0, list(range(start, min(start + BATCH, len(values)))), values[start : start + BATCH])
        for start in range(0, len(values), BATCH)
    ]
    valid = [m for m in map(_read, values) if m is not None and "source_sequence" in m]
    return Feed(batches, valid, feed.stats.invalid)


def _read(value: bytes) -> dict[str, Any] | None:
    """The oracle's reading of one message. A broken message of the feed is cut short or has no sequence number."""
    try:
        return json.loads(value)
    except ValueError:
        return None


def unique(valid: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first of each (exchange, symbol, sequence): what dedupe must keep (the feed's duplicates repeat a
    message it sent before)."""
    seen: dict[tuple[str, str, int], dict[str, Any]] = {}
    for m in valid:
        seen.setdefault((m["exchange"], m["symbol"], m["source_sequence"]), m)
    return list(seen.values())


def total(messages: list[dict[str, Any]], field: str) -> Decimal:
    return sum((Decimal(m[field]) for m in messages), Decimal(0))


def arrow_sum(table: pa.Table, column: str) -> Decimal:
    return pc.sum(table[column]).as_py() or Decimal(0)


def checked(batch: IngestBatch, settings) -> IngestBatch:
    """Sequence-check and dedupe a batch with new state (the flow's steps after validate)."""
    tracker, deduper = SequenceTracker(), Deduper(settings.dedupe_horizon_us, settings.dedupe_max_keys)
    return deduper.dedupe_batch(tracker.check_batch(batch))


def ingested(feed: Feed, settings) -> list[ArrowBatch]:
    """Every batch of the feed through validate -> sequence -> dedupe -> to_arrow, state carried across batches."""
    rules = Rules.from_settings(settings)
    tracker, deduper = SequenceTracker(), Deduper(settings.dedupe_horizon_us, settings.dedupe_max_keys)
    return [
        to_arrow(deduper.dedupe_batch(tracker.check_batch(validate_batch(raw, "trade", rules)))) for raw in feed.batches
    ]


def copy_of(batch: IngestBatch) -> IngestBatch:
    """A fresh batch for one round: the sequence and dedupe steps assign its lists, never change them in place."""
    return msgspec.structs.replace(batch)


@pytest.fixture(scope="module")
def batch_feed() -> Feed:
    feed = trade_feed(BATCH)
    assert len(feed.batches) == 1 and feed.invalid > 0 and len(feed.valid) > len(unique(feed.valid))
    return feed


def test_decode_and_validate(benchmark, batch_feed: Feed, settings) -> None:
    raw = batch_feed.batches[0]
    benchmark.extra_info["messages"] = len(raw.values)
    batch = benchmark(validate_batch, raw, "trade", Rules.from_settings(settings))

    assert len(batch.records) == len(batch_feed.valid)
    assert len(batch.dead_letters) == batch_feed.invalid
    assert sum(r.source_sequence for r in batch.records) == sum(m["source_sequence"] for m in batch_feed.valid)
    assert sum((Decimal(r.quantity) for r in batch.records), Decimal(0)) == total(batch_feed.valid, "quantity")


def test_sequence_check_and_dedupe(benchmark, batch_feed: Feed, settings) -> None:
    validated = validate_batch(batch_feed.batches[0], "trade", Rules.from_settings(settings))
    benchmark.extra_info["messages"] = validated.messages_in
    batch = benchmark.pedantic(checked, setup=lambda: ((copy_of(validated), settings), {}), rounds=50, warmup_rounds=2)

    kept = unique(batch_feed.valid)
    assert [(r.symbol, r.source_sequence) for r in batch.records] == [(m["symbol"], m["source_sequence"]) for m in kept]
    assert batch.duplicates == len(batch_feed.valid) - len(kept) > 0
    assert batch.messages_in == len(batch.records) + len(batch.dead_letters) + batch.duplicates
    assert len(validated.records) == len(batch_feed.valid)  # the rounds' copies left the input as it was


def test_to_arrow(benchmark, batch_feed: Feed, settings) -> None:
    batch = checked(validate_batch(batch_feed.batches[0], "trade", Rules.from_settings(settings)), settings)
    benchmark.extra_info["messages"] = batch.messages_in
    arrow = benchmark(to_arrow, batch)

    kept = unique(batch_feed.valid)
    trades = arrow.tables[TRADES]
    assert trades.num_rows == len(kept)
    assert arrow_sum(trades, "quantity") == total(kept, "quantity")
    assert arrow_sum(trades, "price") == total(kept, "price")
    assert arrow.tables[DEAD_LETTERS].num_rows == batch_feed.invalid


def test_parquet_write(benchmark, batch_feed: Feed, settings, tmp_path: Path) -> None:
    """One batch's trades to a Parquet file the way the tables write them (lz4, 16k-row groups)."""
    trades = ingested(batch_feed, settings)[0].tables[TRADES]
    path = tmp_path / "trades.parquet"
    codec = TABLE_PROPERTIES["write.parquet.compression-codec"]
    row_group = int(TABLE_PROPERTIES["write.parquet.row-group-limit"])
    benchmark.extra_info["rows"] = trades.num_rows
    benchmark(pq.write_table, trades, path, compression=codec, row_group_size=row_group)

    kept = unique(batch_feed.valid)
    written = pq.read_table(path)
    assert written.num_rows == len(kept) and pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "LZ4"
    assert arrow_sum(written, "quantity") == total(kept, "quantity")


def test_iceberg_commit(benchmark, settings) -> None:
    """Buffer one batch (its trades and dead letters) and commit it to a temp-dir SQLite-catalog warehouse; each
    round a new batch, as the flow commits them."""
    rounds = COMMIT_ROUNDS if benchmark.enabled else 1  # untimed (tests/conftest.py): one round
    feed = trade_feed(BATCH * (rounds + 1), seed=3)
    batches = iter(ingested(feed, settings))
    writer = IcebergWriter(open_catalog(settings), settings.namespace, commit_interval_seconds=3600)
    try:
        writer.write(next(batches))  # the first write commits at once (see IcebergWriter): not a timed round
        writer.commit()

        def commit(batch: ArrowBatch) -> None:
            writer.write(batch)
            writer.commit()

        benchmark.extra_info["messages"] = BATCH
        benchmark.pedantic(commit, setup=lambda: ((next(batches),), {}), rounds=rounds)
    finally:
        writer.close()

    kept = unique(feed.valid)
    table = open_catalog(settings).load_table((settings.namespace, TRADES))
    rows = read_table(table, ["quantity"])
    assert rows.num_rows == len(kept)
    assert arrow_sum(rows, "quantity") == total(kept, "quantity")
    assert committed_offsets(table) == {f"{TOPIC}/0": BATCH * (rounds + 1)}
    assert len(table.snapshots()) >= rounds + 1


def test_point_query(benchmark, settings) -> None:
    """One symbol's trades in one minute (benchmarks/query.py's point query) on a warehouse of 5 commits."""
    feed = trade_feed(BATCH * QUERY_BATCHES, symbols=20, seed=5)
    writer = IcebergWriter(open_catalog(settings), settings.namespace, commit_interval_seconds=3600)
    try:
        for i, batch in enumerate(ingested(feed, settings), 1):
            writer.write(batch)
            if i % (QUERY_BATCHES // QUERY_FILES) == 0:
                writer.commit()
    finally:
        writer.close()
    start = feed.valid[0]["timestamp"] + MINUTE_US // 2
    end = start + MINUTE_US
    in_window = [m for m in unique(feed.valid) if start <= m["timestamp"] < end]
    # The feed's symbols are Pareto-distributed: the one of median activity (a few hundred trades in the minute),
    # not the hottest (~18,000), whose query would time building a large result rather than finding it.
    counts = Counter(m["symbol"] for m in in_window)
    symbol = sorted(counts, key=lambda name: (counts[name], name))[len(counts) // 2]
    expected = [m for m in in_window if m["symbol"] == symbol]
    assert expected, "the window holds no trade of the symbol: the oracle would check nothing"

    engine = QueryEngine(open_catalog(settings), settings.namespace)

    def query() -> Page:
        return ticks_between(engine, TRADES, Selection([symbol], start=start, end=end), limit=engine.max_rows)

    try:
        query()  # planning and Parquet footers cached, as in a serving API
        benchmark.extra_info["rows"] = len(expected)
        page = benchmark(query)
    finally:
        engine.close()

    rows = page.rows
    assert rows.num_rows == len(expected) and page.next_cursor is None
    assert sorted(rows.column("source_sequence").to_pylist()) == sorted(m["source_sequence"] for m in expected)
    assert arrow_sum(rows, "quantity") == total(expected, "quantity")
