"""Kafka-side metrics on a real broker: consumer lag per partition as the reader advances, DLQ deliveries."""

from __future__ import annotations

import time

from prometheus_client import REGISTRY

from k2.flow.kafka_source import KafkaSource
from k2.kafka.admin import partitions_of, watermarks
from k2.kafka.producer import DeadLetterPublisher, publish
from k2.model.schemas import DeadLetter


def lag(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("k2_kafka_consumer_lag_messages", {"topic": topic, "partition": str(partition)})


def test_consumer_lag_is_the_distance_to_the_high_watermark(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(partitions=2, prefix="lag")
    publish(kafka_bootstrap, ((topic, b"k", b"%d" % i) for i in range(1_000)))  # one key: all on one partition
    marks = watermarks(kafka_bootstrap, partitions_of(kafka_bootstrap, [topic]))
    loaded = next(part for part, (_, high) in marks.items() if high == 1_000)
    empty = next(part for part in marks if part != loaded)
    source = KafkaSource(kafka_bootstrap, [topic], batch_size=100, tail=False)
    readers = {part: source.build_part("read", part, None) for part in source.list_parts()}
    loaded_partition = int(loaded.rpartition("/")[2])
    assert lag(topic, loaded_partition) == 1_000  # from the watermarks read at start
    assert lag(topic, int(empty.rpartition("/")[2])) == 0

    reader, read, seen = readers[loaded], 0, []
    deadline = time.monotonic() + 60
    while True:
        try:
            batches = reader.next_batch()
        except StopIteration:
            break
        for batch in batches:
            read += len(batch.offsets)
            seen.append((read, lag(topic, loaded_partition)))
        assert time.monotonic() < deadline, "the partition was not read in 60 s"
        if not batches:
            time.sleep(0.01)
    for reader in readers.values():
        reader.close()
    assert read == 1_000
    # After each batch: the messages not read yet (the cached high watermark is the log end here).
    assert seen and all(lag_after == 1_000 - done for done, lag_after in seen), seen
    assert lag(topic, loaded_partition) == 0


def test_dead_letters_delivered_to_the_dlq_topic_are_counted(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(prefix="dlq")
    before = REGISTRY.get_sample_value("k2_kafka_dlq_messages_total", {"outcome": "delivered"}) or 0.0
    letters = [
        DeadLetter(
            source_topic="market.trades",
            source_partition=0,
            source_offset=offset,
            kind="trade",
            reason="malformed_json",
            detail="not JSON",
            raw=b"{oops",
        )
        for offset in range(3)
    ]
    publish = DeadLetterPublisher(kafka_bootstrap, topic)
    publish.send(letters)
    publish.confirm()
    publish.send([])
    publish.confirm()
    assert REGISTRY.get_sample_value("k2_kafka_dlq_messages_total", {"outcome": "delivered"}) - before == 3
