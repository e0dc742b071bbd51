"""Replay on a real broker: Kafka -> flow -> Iceberg, `k2 replay` into new topics, re-ingest those topics into a
second namespace with the real flow, and the trades and quotes tables come out identical."""

from __future__ import annotations

import msgspec
from bytewax.testing import run_main

from flows.ingest import build_flow
from k2.flow.sources import source_from_settings
from k2.kafka.producer import dead_letter_publisher, publish
from k2.loaders.synthetic import FeedConfig, SyntheticFeed
from k2.ops import cli
from k2.query import QueryEngine
from k2.replay import Replay, replay_to_kafka
from tests.fixtures.flow import kafka_settings, read_landed
from tests.fixtures.market import BUSINESS
from tests.integration.test_kafka_ingest import read_topic


def settings_for(tmp_path, bootstrap, namespace, trades, quotes, dlq):
    return kafka_settings(tmp_path, bootstrap, trades, quotes, dlq, namespace=namespace)


def run_flow(settings) -> None:
    run_main(build_flow(source_from_settings(settings), settings, dead_letter_topic=dead_letter_publisher(settings)))


def business_rows(table, columns) -> list[bytes]:
    return sorted(msgspec.json.encode(row) for row in table.select(columns).to_pylist())


def test_replay_into_a_topic_and_reingest_gives_identical_tables(tmp_path, kafka_bootstrap, kafka_topic, monkeypatch):
    original = settings_for(tmp_path, kafka_bootstrap, "market_data", kafka_topic(3, prefix="trades"),
                            kafka_topic(3, prefix="quotes"), kafka_topic(1, prefix="dlq"))  # fmt: skip
    feed = SyntheticFeed(
        FeedConfig(messages=8_000, symbols=20, invalid_rate=0.01, duplicate_rate=0.01, gap_rate=0.005,
                   reorder_rate=0.01, seed=3)
    )  # fmt: skip
    topics = {"trade": original.trades_topic, "quote": original.quotes_topic}
    publish(kafka_bootstrap, ((topics[kind], key, value) for kind, key, value in feed.messages()))
    run_flow(original)
    first = read_landed(original)
    rows = first.tables["trades"].num_rows + first.tables["quotes"].num_rows
    assert rows == feed.stats.sent - feed.stats.invalid - feed.stats.duplicates

    # `k2 replay` into two new topics (the CLI, configured like an operator would: environment variables).
    replay_trades, replay_quotes = kafka_topic(2, prefix="replay-trades"), kafka_topic(2, prefix="replay-quotes")
    monkeypatch.setenv("K2_DATA_DIR", original.data_dir)
    monkeypatch.setenv("K2_KAFKA_BOOTSTRAP", kafka_bootstrap)
    argv = ["replay", "--trades-topic", replay_trades, "--quotes-topic", replay_quotes, "--kinds", "trade,quote"]
    assert cli.main(argv) == 0
    produced = read_topic(kafka_bootstrap, replay_trades) + read_topic(kafka_bootstrap, replay_quotes)
    assert len(produced) == rows
    assert all(m.key() == b"%s:%s" % tuple(msgspec.json.decode(m.value())[f].encode() for f in ("exchange", "symbol"))
               for m in produced[:200])  # fmt: skip

    # Per partition the replay keeps event order (one instrument, one partition).
    for message_list in _by_partition(produced).values():
        times = [msgspec.json.decode(m.value())["timestamp"] for m in message_list]
        assert times == sorted(times)

    again = settings_for(tmp_path, kafka_bootstrap, "replayed", replay_trades, replay_quotes,
                         kafka_topic(1, prefix="dlq"))  # fmt: skip
    run_flow(again)
    second = read_landed(again)
    for name, columns in BUSINESS.items():
        assert second.tables[name].num_rows == first.tables[name].num_rows, name
        assert business_rows(second.tables[name], columns) == business_rows(first.tables[name], columns), name
    assert second.tables["dead_letters"].num_rows == 0 and sum(second.duplicates.values()) == 0


def test_replay_of_a_range_into_one_topic_is_ordered_and_repeatable(tmp_path, kafka_bootstrap, kafka_topic):
    original = settings_for(tmp_path, kafka_bootstrap, "market_data", kafka_topic(2, prefix="trades"),
                            kafka_topic(2, prefix="quotes"), kafka_topic(1, prefix="dlq"))  # fmt: skip
    feed = SyntheticFeed(FeedConfig(messages=3_000, symbols=5, seed=9, invalid_rate=0, duplicate_rate=0))
    topics = {"trade": original.trades_topic, "quote": original.quotes_topic}
    publish(kafka_bootstrap, ((topics[kind], key, value) for kind, key, value in feed.messages()))
    run_flow(original)
    engine = QueryEngine.from_settings(original)
    start, end = feed.config.start_us + 1_000_000, feed.config.start_us + 4_000_000
    replay = Replay(engine, start=start, end=end, chunk_rows=250)
    expected = list(replay.messages())
    single = kafka_topic(1, prefix="replay-both")
    result = replay_to_kafka(replay, kafka_bootstrap, {"trade": single, "quote": single}, create_topics=False)
    assert result.rows == len(expected) == replay.count() > 100
    produced = read_topic(kafka_bootstrap, single)
    assert [m.value() for m in produced] == [m.value for m in expected]  # one partition: the exact replay order
    assert [dict(m.headers())["k2.kind"].decode() for m in produced] == [m.kind for m in expected]
    assert [m.value for m in Replay(engine, start=start, end=end).messages()] == [m.value for m in expected]
    engine.close()


def _by_partition(messages) -> dict:
    grouped: dict = {}
    for message in messages:
        grouped.setdefault((message.topic(), message.partition()), []).append(message)
    return grouped
