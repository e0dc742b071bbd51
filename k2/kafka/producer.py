"""Producing to Kafka: an idempotent producer with checked delivery, instrument keys, and the DLQ publisher."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import msgspec
from confluent_kafka import KafkaError, Producer

from k2.model.schemas import DeadLetter
from k2.ops.config import Settings
from k2.ops.metrics import DLQ_MESSAGES


class DeliveryError(RuntimeError):
    """A message the broker did not confirm."""


def make_producer(bootstrap: str, **config: object) -> Producer:
    """Idempotent and acks=all: a retried send is never written twice; a send is done once all replicas have it."""
    settings = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        **config,
    }
    return Producer(settings)


class CheckedProducer:
    """Produces and counts delivery reports; `flush()` raises if any message was not confirmed."""

    def __init__(self, producer: Producer):
        self.producer = producer
        self.delivered = 0
        self.failed: list[str] = []

    def _report(self, err: KafkaError | None, msg: object) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed.append(str(err))

    def produce(self, topic: str, value: bytes, key: bytes | None = None, headers: list | None = None) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=self._report)
                return
            except BufferError:
                self.producer.poll(0.05)  # local queue full: wait for deliveries, never drop

    def flush(self, timeout: float = 60.0) -> int:
        remaining = self.producer.flush(timeout)
        if remaining or self.failed:
            raise DeliveryError(f"{remaining} undelivered, {len(self.failed)} failed: {self.failed[:3]}")
        return self.delivered


def publish(
    bootstrap: str, messages: Iterable[tuple[str, bytes | None, bytes]], progress: Callable[[int], None] | None = None
) -> int:
    """Send (topic, key, value) messages with confirmed delivery; returns how many were confirmed."""
    producer = CheckedProducer(make_producer(bootstrap))
    for count, (topic, key, value) in enumerate(messages, 1):
        producer.produce(topic, value, key)
        if count % 10_000 == 0:
            producer.producer.poll(0)
            if progress:
                progress(count)
    return producer.flush()


class _Instrument(msgspec.Struct):
    exchange: str = ""
    symbol: str = ""


_instrument = msgspec.json.Decoder(_Instrument).decode


def instrument_key(value: bytes) -> bytes | None:
    """`EXCHANGE:SYMBOL` of a wire message (one instrument, one partition); None for an undecodable one."""
    try:
        found = _instrument(value)
    except (msgspec.MsgspecError, UnicodeDecodeError):  # msgspec raises the latter for bad UTF-8 inside a string
        return None
    return f"{found.exchange}:{found.symbol}".encode()


class DeadLetterPublisher:
    """Dead letters to the DLQ topic with reason and source position in headers: `send` hands them to the producer,
    `confirm` returns once every one sent is delivered (raises `DeliveryError` otherwise, and the flow stops rather
    than commit past them). The flow's committer confirms before each commit and each recovery snapshot
    (`k2.flow.iceberg_sink`), so the wait for the broker is paid once per commit, not once per batch.

    At least once: a restart may send a dead letter again (the `dead_letters` table is the exactly-once record).
    One per process; the producer is thread-safe.
    """

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.producer = CheckedProducer(make_producer(bootstrap))
        self._unconfirmed = 0

    def send(self, dead_letters: list[DeadLetter]) -> None:
        for dead in dead_letters:
            headers = [
                ("k2.reason", dead.reason.encode()),
                ("k2.source.topic", dead.source_topic.encode()),
                ("k2.source.partition", str(dead.source_partition).encode()),
                ("k2.source.offset", str(dead.source_offset).encode()),
                ("k2.detail", dead.detail.encode()[:1_000]),
            ]
            self.producer.produce(self.topic, dead.raw, instrument_key(dead.raw), headers)
        self._unconfirmed += len(dead_letters)

    def confirm(self) -> None:
        if not self._unconfirmed:
            return
        sent, self._unconfirmed = self._unconfirmed, 0
        try:
            self.producer.flush()
        except DeliveryError:
            DLQ_MESSAGES.labels("failed").inc(sent)
            raise
        DLQ_MESSAGES.labels("delivered").inc(sent)


def dead_letter_publisher(settings: Settings) -> DeadLetterPublisher | None:
    """The DLQ publisher for a flow reading Kafka (other sources have no DLQ topic)."""
    if settings.source == "kafka":
        return DeadLetterPublisher(settings.kafka_bootstrap, settings.dlq_topic)
    return None
