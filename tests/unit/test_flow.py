"""The whole ingest flow on TestingSource, into a real temp-dir Iceberg warehouse, read back with pyiceberg."""

from decimal import Decimal

import pyarrow.compute as pc
import pyarrow.parquet as pq

from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from k2.storage.catalog import open_catalog
from tests.fixtures.flow import read_landed, rows_per_partition, run_ingest
from tests.fixtures.market import DROP, T0, fed_per_partition, quote, raw_batch, trade


def test_rows_dead_letters_and_gaps_land_in_their_tables(settings):
    trades = [
        trade(trade_id="a", source_sequence=1, price="0.1"),
        trade(trade_id="b", source_sequence=2, price="0.2"),
        b"{oops",
        trade(trade_id="b", source_sequence=2, price="0.2"),  # duplicate
        trade(trade_id="c", source_sequence=5, price="0.30000001"),  # gap 3..4
        trade(trade_id="d", source_sequence=None, price="123456789.12345678", side=DROP),  # missing side
    ]
    quotes = [quote(quote_id="q1", source_sequence=1), quote(quote_id="q2", source_sequence=2, bid_price="0")]
    landed = run_ingest(settings, [raw_batch(trades, "market.trades", 0), raw_batch(quotes, "market.quotes", 1)])

    rows = landed.rows("trades")
    assert [(r["trade_id"], r["price"]) for r in rows] == [
        ("a", Decimal("0.1")),
        ("b", Decimal("0.2")),
        ("c", Decimal("0.30000001")),
    ]
    assert rows[0]["price"] + rows[1]["price"] == Decimal("0.30000000")  # exact decimals, end to end
    assert [r["source_offset"] for r in rows] == [0, 1, 4]
    assert rows[0]["timestamp"].timestamp() * 1_000_000 == T0
    assert str(rows[0]["timestamp"].tzinfo) == "UTC"
    assert rows[0]["trade_conditions"] == ["@"]

    dead = landed.rows("dead_letters")
    assert sorted((d["source_offset"], d["reason"]) for d in dead) == [(2, "malformed_json"), (5, "missing_field:side")]
    assert {d["raw"] for d in dead} >= {b"{oops"}
    assert sorted(d.source_offset for d in landed.dead_letter_events) == [2, 5]

    (gap,) = landed.rows("sequence_gaps")
    assert (gap["event"], gap["expected_sequence"], gap["received_sequence"], gap["missing_count"]) == ("gap", 3, 5, 2)
    assert len(landed.sequence_events) == 1

    q = landed.rows("quotes")
    assert [(r["quote_id"], r["one_sided"], r["bid_price"]) for r in q] == [
        ("q1", False, Decimal("187.24")),
        ("q2", True, None),
    ]
    # Each table's newest snapshot records where every partition's committed data ends.
    for name in ("trades", "quotes", "dead_letters", "sequence_gaps"):
        assert landed.seams[name] == {"market.trades/0": 6, "market.quotes/1": 2}
    assert landed.duplicates == {"market.trades/0": 1, "market.quotes/1": 0}


def test_conservation_on_the_synthetic_feed(settings):
    feed = SyntheticFeed(
        FeedConfig(
            messages=30_000,
            symbols=20,
            invalid_rate=0.01,
            duplicate_rate=0.01,
            gap_rate=0.005,
            reorder_rate=0.01,
            partitions=3,
        )
    )
    batches = list(feed_batches(feed, batch_size=997))
    landed = run_ingest(settings, batches)
    assert landed.messages == fed_per_partition(batches)  # what the flow read, per partition, is what it was fed
    per_partition = rows_per_partition(landed)
    for key, messages in landed.messages.items():
        assert per_partition[key] + landed.duplicates[key] == messages, key
    assert sum(landed.messages.values()) == feed.stats.sent >= 30_000
    assert landed.tables["dead_letters"].num_rows == feed.stats.invalid
    assert sum(landed.duplicates.values()) == feed.stats.duplicates
    assert landed.tables["sequence_gaps"].num_rows >= feed.stats.gaps
    # No natural key twice.
    trades = landed.tables["trades"]
    keys = list(zip(trades["symbol"].to_pylist(), trades["source_sequence"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys))


def test_tables_are_sorted_and_partitioned_by_day(settings):
    feed = SyntheticFeed(FeedConfig(messages=3_000, symbols=5, mean_interval_us=60_000_000))  # spans days
    run_ingest(settings, list(feed_batches(feed, batch_size=500)))
    table = open_catalog(settings).load_table((settings.namespace, "trades"))
    assert str(table.spec().fields[0].transform) == "day"
    assert [table.schema().find_column_name(f.source_id) for f in table.sort_order().fields] == [
        "symbol",
        "timestamp",
        "source_sequence",
    ]
    days = {task.file.partition[0] for task in table.scan().plan_files()}
    assert len(days) > 1
    for task in table.scan().plan_files():
        data = pq.read_table(task.file.file_path.removeprefix("file://"), columns=["symbol", "timestamp"])
        order = pc.sort_indices(data, sort_keys=[("symbol", "ascending"), ("timestamp", "ascending")])
        assert order.to_pylist() == list(range(data.num_rows))


def test_rerunning_the_same_source_writes_nothing_twice(settings):
    batches = list(feed_batches(SyntheticFeed(FeedConfig(messages=5_000, symbols=10)), batch_size=600))
    first = run_ingest(settings, batches)
    second = run_ingest(settings, batches)  # a source that resumed from the beginning
    for name in ("trades", "quotes", "dead_letters"):
        assert second.tables[name].num_rows == first.tables[name].num_rows, name
    assert second.duplicates == first.duplicates and second.messages == first.messages


def test_a_resumed_source_continues_at_the_seam(settings):
    feed = SyntheticFeed(FeedConfig(messages=6_000, symbols=10, partitions=2))
    batches = list(feed_batches(feed, batch_size=500))
    half = len(batches) // 2
    run_ingest(settings, batches[:half])
    # The second run re-sends two already committed batches before the new ones (at-least-once source).
    landed = run_ingest(settings, batches[half - 2 :])
    full = read_landed(settings)
    total = sum(full.tables[n].num_rows for n in ("trades", "quotes", "dead_letters")) + sum(full.duplicates.values())
    assert total == sum(full.messages.values()) == feed.stats.sent
    trades = landed.tables["trades"]
    offsets = list(zip(trades["source_partition"].to_pylist(), trades["source_offset"].to_pylist(), strict=True))
    assert len(offsets) == len(set(offsets))
