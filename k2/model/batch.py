"""The units the flow carries: batches of messages from one source partition, never single ticks.

A batch from one (topic, partition) keeps the partition's order and lets every step keep per-partition state;
instruments are keyed to partitions, so per-instrument state lives with exactly one batch stream.

An empty batch is a tick (see `tick`): an idle source sends one now and then so the sink's timed commits still run.
It carries no message and no position: every step passes it on unchanged, and counts and seams stay as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from k2.model.schemas import DeadLetter, Kind, Record, Row, SequenceEvent

NO_POSITION = -1  # a tick's `next_offset`: it has reached no position; never compared with a seam


class Accepted(msgspec.Struct, gc=False):
    """The messages of a raw batch the compiled Kafka reader (`k2.kafka.reader`) has validated already.

    `rows` (a pyarrow Table of the kind's data columns, as `k2.ingest.rows.RowTable` holds them) are the batch's
    messages other than those at `left` (ascending indices), in offset order. An accepted message's value in the
    raw batch is empty: its bytes were dropped once its row was built. Those at `left` keep their bytes and take the
    exact path, which gives their verdict and reason.
    """

    kind: str
    rows: Any
    left: list[int]


class RawBatch(msgspec.Struct, gc=False):
    """Consecutive messages of one source partition, column-wise."""

    topic: str
    partition: int
    offsets: list[int]
    values: list[bytes]
    timestamps: list[int] | None = None  # µs; the source records' own timestamps when the source has them
    accepted: Accepted | None = None  # rows the compiled reader validated already (see `Accepted`)

    @property
    def key(self) -> str:
        return position_key(self.topic, self.partition)

    @property
    def next_offset(self) -> int:
        return self.offsets[-1] + 1 if self.offsets else NO_POSITION

    def dead_letter(self, i: int, kind: str, reason: str, detail: str, delivered: bytes | None = None) -> DeadLetter:
        """Message `i` refused: its position and source timestamp, and `delivered` (the bytes the source gave, when
        `values[i]` is a decoded or mapped form of them) or its value as kept."""
        return DeadLetter(
            source_topic=self.topic,
            source_partition=self.partition,
            source_offset=self.offsets[i],
            kind=kind,
            reason=reason,
            detail=detail,
            raw=self.values[i] if delivered is None else delivered,
            source_timestamp=None if self.timestamps is None else self.timestamps[i],
        )


def tick(topic: str, partition: int) -> RawBatch:
    """An empty batch from an idle source partition. Bytewax runs a sink partition (and its epoch-end snapshot)
    only in epochs in which items reach it, so without ticks an idle stream would keep its last dead letters and
    gap events buffered in the sink, not committed, until the next message."""
    return RawBatch(topic, partition, [], [])


class IngestBatch(msgspec.Struct, gc=False, kw_only=True):
    """One raw batch as it moves through validate -> sequence-check -> dedupe.

    `records[i]` came from `offsets[i]`; `classes[i]` is its sequence class once checked.
    Conservation: messages_in == len(records) + len(dead_letters) + duplicates, at every step. The raw offsets
    and the duplicates' offsets travel along so a writer can count exactly what lies above a seam.
    """

    topic: str
    partition: int
    kind: Kind
    source_offsets: list[int]  # every message of the raw batch, ascending
    next_offset: int
    # The valid rows: from `validate_batch` a `k2.ingest.rows.RowTable` (Arrow columns; a sequence of row objects
    # on demand), in offset order.
    records: Sequence[Record | Row]
    offsets: list[int]
    source_timestamps: list[int] | None
    dead_letters: list[DeadLetter]
    classes: Sequence[int] | None = None  # a list, or bytes from the compiled check
    sequence_events: list[SequenceEvent] = []
    duplicate_offsets: list[int] = []

    @property
    def key(self) -> str:
        return position_key(self.topic, self.partition)

    @property
    def messages_in(self) -> int:
        return len(self.source_offsets)

    @property
    def first_offset(self) -> int:
        return self.source_offsets[0]

    @property
    def duplicates(self) -> int:
        return len(self.duplicate_offsets)


def position_key(topic: str, partition: int) -> str:
    """How a source position is named in snapshot summaries: `<topic>/<partition>`."""
    return f"{topic}/{partition}"
