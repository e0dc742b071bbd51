"""Ingest metrics: every metric the flow process exports, as module-level prometheus-client objects.

Names follow Prometheus conventions (`_total` counters, `_seconds` histograms, base units). The objects live in the
default registry, so one process (however many Bytewax workers it runs) exports one set, served by `serve_metrics`.
Everything is counted per batch (thousands of messages), never per message.

Messages re-read below a seam on a restart without recovery state (the warm-up window) are counted again here:
these counters say what the flow processed; the snapshot summaries say what landed.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as Tally

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

from k2.model.batch import IngestBatch

log = logging.getLogger(__name__)

# Commit path (k2/storage/writer.py)
COMMIT_SECONDS = Histogram(
    "k2_iceberg_commit_duration_seconds",
    "Time to commit one Iceberg transaction (append + seam properties)",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
COMMITS = Counter("k2_iceberg_commits", "Iceberg commits attempted, by outcome (ok | failed)", ["table", "outcome"])
SNAPSHOTS = Gauge("k2_iceberg_snapshots", "Snapshots the table holds after the last commit", ["table"])

# Resilience (circuit breaker, degradation manager)
BREAKER_STATE = Gauge("k2_circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open", ["breaker"])
DEGRADATION_LEVEL = Gauge("k2_degradation_level", "Current degradation level (0 = normal)")
DEGRADATION_CHANGES = Counter(
    "k2_degradation_level_changes", "Degradation level changes, by direction (up | down)", ["direction"]
)

# Kafka source and DLQ
CONSUMER_LAG = Gauge(
    "k2_kafka_consumer_lag_messages",
    "Messages between the partition's high watermark (as last fetched) and the next offset the flow reads",
    ["topic", "partition"],
)
DLQ_MESSAGES = Counter(
    "k2_kafka_dlq_messages", "Dead letters sent to the DLQ topic, by outcome (delivered | failed)", ["outcome"]
)

# The flow's steps, by message kind (trade | quote) and, where it helps to find a bad partition, by source
# partition (the topic determines the kind, so `kind` adds no series; it lets rules divide by kind).
PARTITION_LABELS = ("kind", "topic", "partition")
MESSAGES_IN = Counter("k2_ingest_messages", "Messages read from the source", PARTITION_LABELS)
MESSAGES_VALID = Counter(
    "k2_ingest_valid_messages", "Messages that passed validation (rows + duplicates)", PARTITION_LABELS
)
DEAD_LETTERS = Counter(
    "k2_ingest_dead_letters", "Messages rejected by validation, by reason (bounded by the schema)", ["kind", "reason"]
)
DUPLICATES = Counter("k2_ingest_duplicates", "Valid messages dropped as duplicates", PARTITION_LABELS)
SEQUENCE_EVENTS = Counter(
    "k2_ingest_sequence_events", "Breaks in an instrument's sequence, by event (gap | reset)", ["kind", "event"]
)
MISSING_SEQUENCE_NUMBERS = Counter(
    "k2_ingest_missing_sequence_numbers", "Sequence numbers skipped by the gaps found", ["kind"]
)
BATCH_MESSAGES = Histogram(
    "k2_ingest_batch_messages",
    "Messages per source batch",
    ["kind"],
    buckets=(1, 10, 100, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000),
)

# Exchange feeds (k2/feeds, `k2 feed`): what arrived on the socket, what reached Kafka, and the connection.
FEED_FRAMES = Counter(
    "k2_feed_frames",
    "Websocket frames received, by outcome (data | heartbeat | control | error | malformed | unknown)",
    ["exchange", "outcome"],
)
FEED_MESSAGES = Counter(
    "k2_feed_messages",
    "Normalised messages, by outcome (delivered | failed | resent: a re-sent quote not published again)",
    ["exchange", "kind", "outcome"],
)
FEED_CONNECTIONS = Counter(
    "k2_feed_connections", "Connection attempts, by outcome (connected | failed | dropped)", ["exchange", "outcome"]
)
FEED_CONNECTED = Gauge("k2_feed_connected", "1 while the feed's websocket is open and subscribed", ["exchange"])
FEED_BUFFERED = Gauge(
    "k2_feed_buffered_messages", "Messages handed to the producer and not yet confirmed by the broker", ["exchange"]
)
FEED_HOLD_SECONDS = Counter(
    "k2_feed_hold_seconds", "Time the feed stopped reading its socket because the Kafka buffer was full", ["exchange"]
)


def record_batch(batch: IngestBatch) -> None:
    """Count one batch's outcome once it has been validated, sequence-checked and deduplicated.

    Conservation holds per batch: messages in = valid + dead letters, valid = rows + duplicates.
    A tick (an empty batch from an idle source) counts nothing, not even a batch size.
    """
    if not batch.source_offsets:
        return
    position = (batch.kind, batch.topic, str(batch.partition))
    messages, dead = batch.messages_in, len(batch.dead_letters)
    MESSAGES_IN.labels(*position).inc(messages)
    MESSAGES_VALID.labels(*position).inc(messages - dead)
    if batch.duplicate_offsets:
        DUPLICATES.labels(*position).inc(len(batch.duplicate_offsets))
    BATCH_MESSAGES.labels(batch.kind).observe(messages)
    if dead:  # rare: a loop over the dead letters only
        for reason, count in Tally(letter.reason for letter in batch.dead_letters).items():
            DEAD_LETTERS.labels(batch.kind, reason).inc(count)
    if batch.sequence_events:
        for event, count in Tally(e.event for e in batch.sequence_events).items():
            SEQUENCE_EVENTS.labels(batch.kind, event).inc(count)
        missing = sum(e.missing_count for e in batch.sequence_events)
        if missing:
            MISSING_SEQUENCE_NUMBERS.labels(batch.kind).inc(missing)


_server_lock = threading.Lock()
_server_port: int | None = None


def serve_metrics(port: int, addr: str = "0.0.0.0") -> int | None:
    """Serve the default registry on `port` (0: off) once per process; returns the port served, if any.

    Several Bytewax workers in one process share the server. A port already taken (e.g. two flow processes on one
    host with the same `K2_METRICS_PORT`) is logged, not fatal: the data path must not stop for its metrics.
    """
    global _server_port
    if port <= 0:
        return None
    with _server_lock:
        if _server_port is None:
            disable_created_metrics()  # `*_created` series double the exposition and no rule or panel reads them
            try:
                start_http_server(port, addr)
            except OSError as exc:
                log.error("metrics not served: port %s is taken (%s); set K2_METRICS_PORT per process", port, exc)
                return None
            _server_port = port
            log.info("serving metrics on %s:%s/metrics", addr, port, extra={"port": port})
        return _server_port
