"""Kafka end to end on a real broker: produce -> flow -> Iceberg, the DLQ topic, resume and reconciliation."""

from __future__ import annotations

from bytewax.testing import run_main
from confluent_kafka import Consumer, TopicPartition

from flows.ingest import build_flow
from k2.flow.sources import source_from_settings
from k2.kafka.admin import partitions_of, watermarks
from k2.kafka.producer import dead_letter_publisher, publish
from k2.loaders.synthetic import FeedConfig, SyntheticFeed
from k2.ops.reconcile import reconcile
from tests.fixtures.flow import kafka_settings, read_landed
from tests.fixtures.market import trade, wire


def settings_on_new_topics(tmp_path, bootstrap, kafka_topic, partitions: int):
    """`kafka_settings` on new trades and quotes topics of `partitions` partitions each, and a new DLQ topic."""
    trades, quotes = kafka_topic(partitions, prefix="trades"), kafka_topic(partitions, prefix="quotes")
    return kafka_settings(tmp_path, bootstrap, trades, quotes, kafka_topic(1, prefix="dlq"))


def produce_feed(settings, feed: SyntheticFeed) -> None:
    topics = {"trade": settings.trades_topic, "quote": settings.quotes_topic}
    publish(settings.kafka_bootstrap, ((topics[k], key, value) for k, key, value in feed.messages()))


def run_flow(settings) -> None:
    run_main(build_flow(source_from_settings(settings), settings, dead_letter_topic=dead_letter_publisher(settings)))


def read_topic(bootstrap: str, topic: str) -> list:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "k2-test",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    parts = partitions_of(bootstrap, [topic])
    consumer.assign([TopicPartition(t, p, 0) for t, p in parts])
    messages, ended = [], set()
    while len(ended) < len(parts):
        for message in consumer.consume(500, timeout=5):
            if message.error():
                ended.add(message.partition())
            else:
                messages.append(message)
    consumer.close()
    return messages


def test_exactly_the_unique_valid_rows_land_and_dead_letters_reach_the_dlq(tmp_path, kafka_bootstrap, kafka_topic):
    settings = settings_on_new_topics(tmp_path, kafka_bootstrap, kafka_topic, 3)
    feed = SyntheticFeed(
        FeedConfig(
            messages=20_000, symbols=30, invalid_rate=0.01, duplicate_rate=0.01, gap_rate=0.005, reorder_rate=0.01
        )
    )
    produce_feed(settings, feed)
    run_flow(settings)

    landed = read_landed(settings)
    stats = feed.stats
    rows = landed.tables["trades"].num_rows + landed.tables["quotes"].num_rows
    assert rows == stats.sent - stats.invalid - stats.duplicates
    assert landed.tables["dead_letters"].num_rows == stats.invalid
    assert sum(landed.duplicates.values()) == stats.duplicates
    assert landed.tables["sequence_gaps"].num_rows >= stats.gaps
    for name in ("trades", "quotes"):
        t = landed.tables[name]
        keys = list(zip(t["symbol"].to_pylist(), t["source_sequence"].to_pylist(), strict=True))
        assert len(keys) == len(set(keys)), name

    dlq = read_topic(kafka_bootstrap, settings.dlq_topic)
    assert len(dlq) == stats.invalid
    headers = dict(dlq[0].headers())
    assert {"k2.reason", "k2.source.topic", "k2.source.partition", "k2.source.offset"} <= set(headers)
    table_positions = {
        (d["source_topic"], d["source_partition"], d["source_offset"]) for d in landed.rows("dead_letters")
    }
    topic_positions = {
        (
            dict(m.headers())["k2.source.topic"].decode(),
            int(dict(m.headers())["k2.source.partition"]),
            int(dict(m.headers())["k2.source.offset"]),
        )
        for m in dlq
    }
    assert topic_positions == table_positions

    topics = [settings.trades_topic, settings.quotes_topic]
    marks = watermarks(kafka_bootstrap, partitions_of(kafka_bootstrap, topics))
    reports = reconcile(settings, marks)
    assert len(reports) == 6
    for report in reports:
        assert report.balanced, report
        assert report.lag == 0 and report.committed_offset == report.high_watermark


def test_a_second_run_resumes_at_the_seam_and_adds_only_new_messages(tmp_path, kafka_bootstrap, kafka_topic):
    settings = settings_on_new_topics(tmp_path, kafka_bootstrap, kafka_topic, 2)
    first = SyntheticFeed(FeedConfig(messages=5_000, symbols=10, seed=1))
    produce_feed(settings, first)
    run_flow(settings)
    run_flow(settings)  # nothing new: must add nothing
    once = read_landed(settings)
    assert once.tables["trades"].num_rows + once.tables["quotes"].num_rows == (
        first.stats.sent - first.stats.invalid - first.stats.duplicates
    )

    second = SyntheticFeed(FeedConfig(messages=3_000, symbols=10, seed=2, start_us=first.config.start_us + 10**10))
    produce_feed(settings, second)
    run_flow(settings)
    after = read_landed(settings)
    expected = sum(f.stats.sent - f.stats.invalid - f.stats.duplicates for f in (first, second))
    rows = after.tables["trades"].num_rows + after.tables["quotes"].num_rows
    # seed 2 restarts each instrument's count at 1 with later timestamps: a reset (new session), not duplicates
    assert rows == expected
    offsets = list(
        zip(
            after.tables["trades"]["source_partition"].to_pylist(),
            after.tables["trades"]["source_offset"].to_pylist(),
            strict=True,
        )
    )
    assert len(offsets) == len(set(offsets))
    assert all(report.balanced for report in reconcile(settings))


def test_messages_with_bad_utf8_become_dead_letters_in_the_table_and_the_dlq(tmp_path, kafka_bootstrap, kafka_topic):
    # Bad UTF-8 inside a JSON string: the dead-letter topic sink keys what it sends by instrument, and that key
    # lookup raised (and stopped the flow) before it learned to give such a message no key.
    settings = settings_on_new_topics(tmp_path, kafka_bootstrap, kafka_topic, 1)
    good = [wire(trade(trade_id=f"t{i}", source_sequence=i + 1)) for i in range(3)]
    bad = [b'{"exchange":"XNAS","symbol":"\xff"}', b'{"exchange":"\xc3","symbol":"AAPL","price":"1"}']
    publish(kafka_bootstrap, ((settings.trades_topic, b"XNAS:AAPL", value) for value in [*good, *bad]))
    run_flow(settings)

    landed = read_landed(settings)
    assert landed.tables["trades"].num_rows == 3
    assert sorted(d["raw"] for d in landed.rows("dead_letters")) == sorted(bad)
    dlq = read_topic(kafka_bootstrap, settings.dlq_topic)
    assert sorted(m.value() for m in dlq) == sorted(bad)
    assert all(m.key() is None for m in dlq)
