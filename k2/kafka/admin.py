"""Kafka administration: create topics, list a topic's partitions, read watermarks."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from k2.model.batch import position_key

log = logging.getLogger(__name__)


def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int = 4, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet (replication 1 on a single broker, else the cluster default)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout).topics
    brokers = len(admin.list_topics(timeout=timeout).brokers)
    wanted = [
        NewTopic(topic, num_partitions=partitions, replication_factor=1 if brokers == 1 else -1)
        for topic in topics
        if topic not in existing
    ]
    for topic, future in (admin.create_topics(wanted, operation_timeout=timeout) if wanted else {}).items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            log.debug("topic %s already exists", topic)


def partitions_of(bootstrap: str, topics: Iterable[str], timeout: float = 30.0) -> list[tuple[str, int]]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout)
    found = []
    for topic in topics:
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise KafkaException(f"topic {topic!r} not found on {bootstrap}")
        found += [(topic, p) for p in sorted(described.partitions)]
    return found


def watermarks(
    bootstrap: str, partitions: Iterable[tuple[str, int]], timeout: float = 10.0
) -> dict[str, tuple[int, int]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "k2-watermarks", "enable.auto.commit": False})
    try:
        return {
            position_key(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=timeout)
            for t, p in partitions
        }
    finally:
        consumer.close()
