"""What K2's data is: the wire and row types of trades and quotes, dead letters and gap events (`schemas`), and the
batches the ingest steps pass along (`batch`: `RawBatch` of one source partition, `IngestBatch` after validation).

Nothing here does I/O or imports a stream engine.
"""
