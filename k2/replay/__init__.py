"""Deterministic replay from Iceberg: trades and quotes of a time range, merged in event order, as wire messages.

A replay pins one snapshot per table when it starts (the newest, or the newest committed at or before `as_of`), so
it is stable while data lands, and reads through the query engine in bounded chunks: time slices sized from the
planned files' row counts and time bounds (adapting to how many rows the filters really keep), each read with
parameterised SQL, ordered, and paged by the sort key when a slice holds more than a chunk. Nothing holds more
than one chunk of rows.

The order is total and depends only on the data, so two replays of the same snapshots produce identical streams:
`(timestamp, source_sequence (absent first), kind, exchange, symbol, source_topic, source_partition, source_offset)`.

Each row becomes a message in the K2 wire schema v2 — the fields of `k2.model.schemas.Trade`/`Quote` in their order,
decimals as exact strings, times as integer µs, the original ids, sequence, conditions, vendor data, message id
and ingestion time — so ingesting the replayed messages reproduces the rows (their source positions aside).

Targets: Kafka topics (`replay_to_kafka`, idempotent producer, delivery checked; `k2 replay`), NDJSON lines and an
Arrow IPC stream (`/v1/replay`). A `Pacer` spaces messages by their event-time differences divided by a speed
factor (None: as fast as possible), on a monotonic clock, against one origin so sleeps never accumulate drift.

Modules: `wire` (rows -> wire messages), `read` (`Replay`: pinned snapshots, ordered chunks), `pacing` (`Pacer`),
`targets` (NDJSON, an Arrow stream, Kafka).
"""

from k2.replay.pacing import Pacer, paced
from k2.replay.read import (
    MAX_SPEED,
    ORDER,
    REPLAY_SCHEMA,
    Replay,
    ReplayRequest,
    _Density,
    check_speed,
    chunk_messages,
    parse_kinds,
)
from k2.replay.targets import ReplayResult, arrow_stream, describe, ndjson_stream, replay_to_kafka, topics_for
from k2.replay.wire import Message, QuoteWire, TradeWire, instrument_keys, wire_values

__all__ = [
    "MAX_SPEED",
    "ORDER",
    "REPLAY_SCHEMA",
    "Message",
    "Pacer",
    "QuoteWire",
    "Replay",
    "ReplayRequest",
    "ReplayResult",
    "TradeWire",
    "_Density",
    "arrow_stream",
    "check_speed",
    "chunk_messages",
    "describe",
    "instrument_keys",
    "ndjson_stream",
    "paced",
    "parse_kinds",
    "replay_to_kafka",
    "topics_for",
    "wire_values",
]
