"""A warehouse that has read further than its topic reaches (the topic was recreated, or this is another cluster)
stops the flow with a clear error instead of silently skipping what is published up to that position."""

from __future__ import annotations

import time

import pytest
from bytewax.testing import run_main
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from flows.ingest import build_flow
from k2.flow.kafka_source import KafkaSource, PositionBeyondTopicEnd
from k2.flow.sources import source_from_settings
from k2.kafka.producer import publish
from k2.storage.catalog import TRADES
from tests.fixtures.flow import kafka_settings, read_landed
from tests.fixtures.market import trade, wire


def test_a_position_past_the_topic_end_is_refused_from_the_seams_and_from_recovery_state(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1, prefix="trades")
    publish(kafka_bootstrap, [(topic, None, wire(trade(trade_id=f"t{i}", source_sequence=i + 1))) for i in range(3)])
    source = KafkaSource(kafka_bootstrap, [topic], start_offsets=lambda: {f"{topic}/0": 10}, tail=False)
    with pytest.raises(PositionBeyondTopicEnd, match=r"up to offset 10, but the topic ends at 3"):
        source.build_part("read", f"{topic}/0", None)
    with pytest.raises(PositionBeyondTopicEnd, match=r"up to offset 7, but the topic ends at 3"):
        source.build_part("read", f"{topic}/0", 7)
    at_the_end = source.build_part("read", f"{topic}/0", 3)  # read exactly to the end: nothing new, no error
    at_the_end.close()


def recreate(bootstrap: str, topic: str) -> None:
    """Delete `topic` and create it again, empty, with the same name and one partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([topic])[topic].result(timeout=30)
    deadline = time.monotonic() + 60
    while True:  # the broker takes a moment to forget the name
        try:
            admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_the_flow_on_a_recreated_topic_stops_and_writes_nothing(tmp_path, kafka_bootstrap, kafka_topic):
    trades, quotes, dlq = kafka_topic(1, prefix="trades"), kafka_topic(1, prefix="quotes"), kafka_topic(1, prefix="dlq")
    settings = kafka_settings(tmp_path, kafka_bootstrap, trades, quotes, dlq)
    publish(kafka_bootstrap, [(trades, None, wire(trade(trade_id=f"t{i}", source_sequence=i + 1))) for i in range(50)])
    run_main(build_flow(source_from_settings(settings), settings))
    assert read_landed(settings).tables[TRADES].num_rows == 50

    recreate(kafka_bootstrap, trades)
    publish(kafka_bootstrap, [(trades, None, wire(trade(trade_id=f"n{i}", source_sequence=i + 1))) for i in range(5)])
    with pytest.raises(Exception, match="build_part") as raised:  # Bytewax wraps the source's error
        run_main(build_flow(source_from_settings(settings), settings))
    chain = [raised.value]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    refusals = [exc for exc in chain if isinstance(exc, PositionBeyondTopicEnd)]
    assert refusals and "up to offset 50, but the topic ends at 5" in str(refusals[0])
    landed = read_landed(settings).tables[TRADES]
    assert sorted(landed["trade_id"].to_pylist()) == sorted(f"t{i}" for i in range(50))  # nothing new, nothing lost
