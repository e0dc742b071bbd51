"""The ingest steps, as plain functions on batches: `validate` (wire bytes -> exact rows or dead letters with a
reason: the compiled path `k2_native` (native/) first, `checks` holds the exact path's verdicts), `rows` (the
validated rows as Arrow columns, `RowTable`), `mapping` (a topic's own JSON shape to K2's fields, `K2_MAPPING`),
`sequence` (per-instrument gaps and resets), `dedupe` (redeliveries by natural key within a horizon),
`columnar` (rows -> Arrow tables per Iceberg table), and `pipeline`, the one place that builds them from settings.

The Bytewax flow, the realtime tail, tests and benchmarks all run them through `pipeline`. No stream engine here.
"""
