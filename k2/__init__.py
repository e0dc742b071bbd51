"""K2: market data from Kafka, validated, sequence-checked and deduplicated, landed exactly once in Apache Iceberg.

Packages, by concept (the README's layout section says more):
`model` (wire and row types, batches), `ingest` (the four ingest steps and the pipeline that builds them),
`flow` (Bytewax adapters: every Bytewax import lives there or in `flows/`), `storage` (Iceberg: catalog, writer,
commit protocol, seams, maintenance, backup), `kafka` (admin and producing), `query` (the engine and the realtime
tail), `replay`, `loaders` (files and the synthetic feed), `ops` (settings, logs, metrics, traces, degradation,
breaker, reconciliation, the `k2` command).
"""
