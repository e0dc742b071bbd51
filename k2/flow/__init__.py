"""Bytewax adapters: every Bytewax import in K2 lives here (and in `flows/`), so the stream engine stays replaceable.

`sources` (synthetic and file sources), `kafka_source` (the Kafka source: one compiled reader per partition),
`steps` (stateful wrappers around the ingest pipeline's per-partition state, process tuning), `iceberg_sink` (the
sink around `k2.storage.writer.IcebergWriter`) and `recovery` (the recovery store and the `bytewax.run` command).
"""
