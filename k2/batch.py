"""The units the flow carries: batches of messages from one source partition, never single ticks.

A batch from one (topic, partition) keeps the partition's order and lets every step keep per-partition state;
instruments are keyed to partitions, so per-instrument state lives with exactly one batch stream.
"""

from __future__ import annotations

import msgspec

from k2.schemas import DeadLetter, Kind, Record, SequenceEvent


class RawBatch(msgspec.Struct, gc=False):
    """Consecutive messages of one source partition, column-wise."""

    topic: str
    partition: int
    offsets: list[int]
    values: list[bytes]
    timestamps: list[int] | None = None  # µs; the source records' own timestamps when the source has them

    @property
    def key(self) -> str:
        return position_key(self.topic, self.partition)

    @property
    def next_offset(self) -> int:
        return self.offsets[-1] + 1


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
    records: list[Record]
    offsets: list[int]
    source_timestamps: list[int] | None
    dead_letters: list[DeadLetter]
    classes: list[int] | None = None
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
