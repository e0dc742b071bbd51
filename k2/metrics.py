"""Ingest metrics: every metric the flow process exports, as module-level prometheus-client objects.

Names follow Prometheus conventions (`_total` counters, `_seconds` histograms, base units). The objects live in the
default registry, so one process (however many Bytewax workers it runs) exports one set, served by `serve_metrics`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Commit path (k2/sink.py)
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

# Kafka source
CONSUMER_LAG = Gauge(
    "k2_kafka_consumer_lag_messages",
    "Messages between the partition's high watermark and the next offset the flow reads",
    ["topic", "partition"],
)
