"""Running K2: `config` (settings from `K2_*`), `logs`, `metrics` (Prometheus), `tracing` (OpenTelemetry spans per
batch), `degrade` (degradation levels), `breaker` (the commit circuit breaker), `memory`, `stopping` (clean stop on
SIGTERM/Ctrl-C), `reconcile` (conservation per partition) and `cli` (the `k2` command).
"""
