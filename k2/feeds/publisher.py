"""Publishing normalised messages with K2's idempotent producer, within a bound, holding the socket when Kafka lags.

Every message handed to the producer stays counted as `buffered` until the broker confirms it. When `max_buffered`
are unconfirmed (Kafka slow or down), `room()` waits, and the runner stops reading the websocket meanwhile (it
holds; the exchange's frames wait in the socket and, if the exchange gives up on a slow reader, the reconnect
that follows leaves a gap K2 records). The producer never gives up on a broker that is down (`message.timeout.ms`
0: a component that is down is waited for). A message the broker refuses for good is counted `failed` and logged
with its bytes; its sequence number is then missing, so K2 records the gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from confluent_kafka import KafkaError, Producer

from k2.feeds.normalise import FeedMessage
from k2.kafka.producer import make_producer
from k2.model.schemas import Kind
from k2.ops.metrics import FEED_BUFFERED, FEED_HOLD_SECONDS, FEED_MESSAGES

log = logging.getLogger(__name__)
_POLL_PAUSE = 0.005  # seconds between producer polls while holding or draining
_POLL_EVERY = 1_000  # messages produced between polls while publishing


def feed_producer(bootstrap: str, max_buffered: int) -> Producer:
    """K2's idempotent acks=all producer, retrying a broker that is down for as long as it takes."""
    return make_producer(
        bootstrap, **{"message.timeout.ms": 0, "queue.buffering.max.messages": max(max_buffered * 2, 100_000)}
    )


class KafkaPublisher:
    """Sends messages to the trades/quotes topics and counts what the broker confirmed, per kind."""

    def __init__(self, exchange: str, producer: Producer, topics: dict[str, str], max_buffered: int = 50_000):
        if max_buffered <= 0:
            raise ValueError("max_buffered must be positive")
        self.exchange, self.producer, self.topics, self.max_buffered = exchange, producer, topics, max_buffered
        self._kind_of = {topic: kind for kind, topic in topics.items()}
        self.buffered = 0
        self.delivered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.hold_seconds = 0.0
        self._reported: dict[tuple[str, str], int] = {}
        self._since_poll = 0

    @property
    def full(self) -> bool:
        return self.buffered >= self.max_buffered

    def publish(self, messages: list[FeedMessage]) -> None:
        produce, topics = self.producer.produce, self.topics
        for message in messages:
            while True:
                try:
                    produce(topics[message.kind], message.value, message.key, on_delivery=self._report)
                    break
                except BufferError:  # librdkafka's own queue is full: serve deliveries, never drop
                    self.producer.poll(_POLL_PAUSE)
            self.buffered += 1
        self._since_poll += len(messages)
        if self._since_poll >= _POLL_EVERY:  # serve confirmations now and then (and when quiet: serve_deliveries)
            self.producer.poll(0)
            self._since_poll = 0

    def _report(self, err: KafkaError | None, msg) -> None:
        self.buffered -= 1
        kind = self._kind_of.get(msg.topic(), "unknown")
        if err is None:
            self.delivered[kind] += 1
            return
        self.failed[kind] += 1
        log.error(
            "the broker refused a feed message: %s",
            err,
            extra={"exchange": self.exchange, "topic": msg.topic(), "message": (msg.value() or b"")[:2_000].decode()},
        )

    async def serve_deliveries(self, every: float = 0.05) -> None:
        """Serve the broker's confirmations while the socket is quiet (publishing serves them too); runs until
        cancelled."""
        while True:
            self.producer.poll(0)
            await asyncio.sleep(every)

    async def room(self) -> None:
        """Return once fewer than half the bound are unconfirmed (at once when not full)."""
        if not self.full:
            return
        began = time.monotonic()
        log.warning("Kafka is behind: %s messages unconfirmed; holding the socket", self.buffered)
        while self.buffered > self.max_buffered // 2:
            self.producer.poll(0)
            await asyncio.sleep(_POLL_PAUSE)
        held = time.monotonic() - began
        self.hold_seconds += held
        FEED_HOLD_SECONDS.labels(self.exchange).inc(held)
        log.info("Kafka caught up after %.1f s; reading again", held, extra={"exchange": self.exchange})

    async def drain(self, timeout: float) -> int:
        """Wait up to `timeout` for every confirmation; returns how many are still unconfirmed."""
        deadline = time.monotonic() + timeout
        while self.buffered and time.monotonic() < deadline:
            self.producer.poll(0)
            await asyncio.sleep(_POLL_PAUSE)
        self.report_metrics()
        return self.buffered

    def report_metrics(self) -> None:
        """Move the delivery counts into Prometheus (once per status tick, not per message)."""
        FEED_BUFFERED.labels(self.exchange).set(self.buffered)
        for outcome, tally in (("delivered", self.delivered), ("failed", self.failed)):
            for kind, count in tally.items():
                seen = self._reported.get((outcome, kind), 0)
                if count > seen:
                    FEED_MESSAGES.labels(self.exchange, kind, outcome).inc(count - seen)
                    self._reported[(outcome, kind)] = count


def topics_for(trades_topic: str, quotes_topic: str) -> dict[Kind, str]:
    return {"trade": trades_topic, "quote": quotes_topic}
