"""Degradation on a real broker: while trades lag, quotes wait in Kafka; then they are read, every one of them."""

from __future__ import annotations

import pytest
from bytewax.dataflow import Dataflow
from bytewax.operators import input as op_input
from bytewax.operators import output as op_output
from bytewax.testing import TestingSink, run_main

from k2.flow.kafka_source import KafkaSource
from k2.kafka.producer import publish
from k2.model.batch import RawBatch
from k2.ops.degrade import DegradationManager, Level, Thresholds

pytestmark = pytest.mark.integration

NONE = (None, None, None)


def test_quotes_wait_while_trades_lag_and_nothing_is_dropped(kafka_topic, kafka_bootstrap):
    trades, quotes = kafka_topic(3, prefix="trades"), kafka_topic(3, prefix="quotes")
    per_topic = 6_000
    publish(kafka_bootstrap, ((trades, b"k%d" % (i % 7), b"t%d" % i) for i in range(per_topic)))
    publish(kafka_bootstrap, ((quotes, b"k%d" % (i % 7), b"q%d" % i) for i in range(per_topic)))
    # The real signal (the source partitions' measured lag), with a threshold a test can cross: any trade
    # waiting asks for HIGH, which pauses the quotes topic.
    thresholds = Thresholds(
        lag_messages=NONE,
        priority_lag_messages=(None, 1, None),
        commit_seconds=NONE,
        rss_bytes=NONE,
        cool_down_seconds=0.3,
    )
    manager = DegradationManager(thresholds, low_priority_topics=[quotes], sample_every_seconds=0.02)
    source = KafkaSource(kafka_bootstrap, [trades, quotes], batch_size=500, tail=False, degradation=manager)
    batches: list[RawBatch] = []
    flow = Dataflow("degradation")
    op_output("out", op_input("read", flow, source), TestingSink(batches))
    run_main(flow)

    assert [(a, b) for a, b, _ in manager.changes][:2] == [(Level.NORMAL, Level.HIGH), (Level.HIGH, Level.ELEVATED)]
    order = [batch.topic for batch in batches]
    last_trade, first_quote = max(i for i, t in enumerate(order) if t == trades), order.index(quotes)
    assert first_quote > last_trade  # every trade was read before any quote
    for topic, prefix in ((trades, b"t"), (quotes, b"q")):
        values = [v for batch in batches if batch.topic == topic for v in batch.values]
        assert sorted(values) == sorted(prefix + b"%d" % i for i in range(per_topic))  # each exactly once
