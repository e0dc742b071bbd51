"""Kafka administration: create topics, list a topic's partitions, read watermarks."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Future

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from k2.model.batch import position_key

log = logging.getLogger(__name__)


def ensure_topics(bootstrap: str, topics: Iterable[str], partitions: int = 4, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet (replication 1 on a single broker, else the cluster default)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=timeout)
    existing, brokers = metadata.topics, len(metadata.brokers)
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
    return _partitions(AdminClient({"bootstrap.servers": bootstrap}), bootstrap, topics, timeout)


def watermarks(
    bootstrap: str, partitions: Iterable[tuple[str, int]], timeout: float = 10.0
) -> dict[str, tuple[int, int]]:
    """(low, high) offsets of each partition, as a consumer of committed messages sees them."""
    return _watermarks(AdminClient({"bootstrap.servers": bootstrap}), list(partitions), timeout)


def partitions_with_watermarks(
    bootstrap: str, topics: Iterable[str], timeout: float = 10.0
) -> dict[str, tuple[int, int]]:
    """`partitions_of` the topics with their `watermarks`, in partition order, asked through one client."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return _watermarks(admin, _partitions(admin, bootstrap, topics, timeout), timeout)


def _partitions(admin: AdminClient, bootstrap: str, topics: Iterable[str], timeout: float) -> list[tuple[str, int]]:
    metadata = admin.list_topics(timeout=timeout)
    found = []
    for topic in topics:
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise KafkaException(f"topic {topic!r} not found on {bootstrap}")
        found += [(topic, p) for p in sorted(described.partitions)]
    return found


def _watermarks(admin: AdminClient, partitions: list[tuple[str, int]], timeout: float) -> dict[str, tuple[int, int]]:
    # One request per bound for all partitions; read_committed, as librdkafka's consumers (and so the readers) read.
    if not partitions:
        return {}

    def ask(spec: OffsetSpec) -> dict[TopicPartition, Future]:
        wanted = {TopicPartition(t, p): spec for t, p in partitions}
        return admin.list_offsets(wanted, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout)

    lows, highs = ask(OffsetSpec.earliest()), ask(OffsetSpec.latest())
    found = {(tp.topic, tp.partition): (low.result().offset, highs[tp].result().offset) for tp, low in lows.items()}
    return {position_key(t, p): found[t, p] for t, p in partitions}
