import msgspec
from bytewax.testing import run_main

from flows.ingest import build_flow
from k2.flow.sources import FileSource, SyntheticSource
from k2.ingest.pipeline import kind_for_topic
from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches, partition_of
from tests.fixtures.flow import assert_landed_exactly, read_landed
from tests.fixtures.market import fed_per_partition, quote, trade, wire

# Instrument i of the feed is VENUES[i % 4]:S{i:04d}; its partition is crc32(key) % partitions. Worked out once
# with zlib.crc32 for 3 partitions (crc32 in hex -> mod 3): XNAS:S0000 5f9ecdb8 -> 0, XASX:S0001 cbb95053 -> 2,
# BINANCE:S0002 34db1da3 -> 1, CME:S0003 cb397d8a -> 1, XNAS:S0004 58f309a1 -> 0, XASX:S0005 ccd4944a -> 2,
# BINANCE:S0006 33b6d9ba -> 0, CME:S0007 cc54b993 -> 2.
PARTITION_OF_3 = {"XNAS:S0000": 0, "XASX:S0001": 2, "BINANCE:S0002": 1, "CME:S0003": 1,
                  "XNAS:S0004": 0, "XASX:S0005": 2, "BINANCE:S0006": 0, "CME:S0007": 2}  # fmt: skip


def test_feed_is_reproducible_and_keys_instruments_to_partitions():
    config = FeedConfig(messages=2_000, symbols=8, partitions=3, seed=11)
    first = list(feed_batches(SyntheticFeed(config), 100))
    second = list(feed_batches(SyntheticFeed(config), 100))
    assert [b.values for b in first] == [b.values for b in second]
    for batch in first:
        assert batch.offsets == list(range(batch.offsets[0], batch.offsets[0] + len(batch.values)))
    assert {key: partition_of(key.encode(), 3) for key in PARTITION_OF_3} == PARTITION_OF_3
    seen: dict[str, set[int]] = {}
    for batch in first:
        for value in batch.values:
            try:
                message = msgspec.json.decode(value)
            except msgspec.DecodeError:
                continue  # an injected truncated message
            if "symbol" in message:  # not an injected message without its symbol
                seen.setdefault(f"{message['exchange']}:{message['symbol']}", set()).add(batch.partition)
    # Every instrument sent, each in the one partition its key hashes to.
    assert seen == {key: {partition} for key, partition in PARTITION_OF_3.items()}


def test_feed_injects_what_it_reports():
    feed = SyntheticFeed(
        FeedConfig(messages=20_000, invalid_rate=0.01, duplicate_rate=0.01, gap_rate=0.01, reorder_rate=0.01)
    )
    list(feed.messages())
    stats = feed.stats
    assert 100 < stats.invalid < 300 and 100 < stats.duplicates < 300 and 100 < stats.gaps < 300
    assert 100 < stats.reordered < 300 and stats.sent >= 20_000


def test_kind_for_topic(settings):
    assert kind_for_topic("market.trades", settings) == "trade"
    assert kind_for_topic("market.quotes", settings) == "quote"
    assert kind_for_topic("synthetic.quotes", settings) == "quote"
    assert kind_for_topic("news", settings) is None


def test_synthetic_source_fills_the_warehouse(settings):
    config = FeedConfig(messages=3_000, symbols=5, invalid_rate=0.01, duplicate_rate=0.01)
    run_main(build_flow(SyntheticSource(config, batch_size=400), settings))
    # The oracle: the same seeded feed, counted by the generator itself, never by K2.
    feed = SyntheticFeed(config)
    fed = fed_per_partition(feed_batches(feed, 400))
    assert feed.stats.invalid > 0 and feed.stats.duplicates > 0
    landed = assert_landed_exactly(settings, feed.stats)
    assert landed.messages == fed and sum(fed.values()) == feed.stats.sent >= 3_000
    assert landed.tables["trades"].num_rows > 1_000 and landed.tables["quotes"].num_rows > 1_000


def test_file_source_positions_are_line_numbers(settings, tmp_path):
    path = tmp_path / "day1.ndjson"
    path.write_bytes(b"\n".join([wire(quote(quote_id="a")), b"not json", wire(quote(quote_id="b", source_sequence=2))]))
    run_main(build_flow(FileSource(path, "quote", batch_size=2), settings))
    landed = read_landed(settings)
    rows = sorted(landed.rows("quotes"), key=lambda r: r["source_offset"])  # two commits: scan order is free
    assert [(r["quote_id"], r["source_offset"]) for r in rows] == [("a", 0), ("b", 2)]
    assert [(d["source_topic"], d["source_offset"]) for d in landed.rows("dead_letters")] == [("file.day1.quotes", 1)]
    assert landed.seams["quotes"] == {"file.day1.quotes/0": 3}


def test_trades_file_with_a_quote_line_dead_letters_it(settings, tmp_path):
    path = tmp_path / "mixed.ndjson"
    path.write_bytes(wire(trade()) + b"\n" + wire(quote()) + b"\n")
    run_main(build_flow(FileSource(path, "trade"), settings))
    landed = read_landed(settings)
    assert landed.tables["trades"].num_rows == 1
    assert [d["reason"] for d in landed.rows("dead_letters")] == ["missing_field:trade_id"]
