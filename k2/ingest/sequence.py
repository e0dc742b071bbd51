"""Per-instrument sequence checking: in-order, gap, duplicate, late (out-of-order) or reset.

State per (kind, exchange, symbol): the highest sequence seen in the current session, the highest event time seen,
and the outstanding gaps as sorted ranges. That state is an exact, compact picture of which sequence numbers were
seen (everything up to `last` except the open gaps), so it also tells a duplicate from a late fill without keeping
every key. Classification depends only on the messages, never on the wall clock.

Reset rule: a sequence that goes backwards while event time moves forward is a new session when the new count is
at or below `reset_floor` (a feed restarting at 0 or 1) or when event time was silent for `session_gap_us`
(a new trading day). Anything else going backwards is a late fill of an open gap, or a duplicate.
"""

from __future__ import annotations

import enum
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

import k2_native
import pyarrow as pa

from k2.ingest.rows import RowTable, column_of
from k2.model.batch import IngestBatch
from k2.model.schemas import SequenceEvent


class SeqClass(enum.IntEnum):
    IN_ORDER = 0
    GAP = 1  # in order after a hole; the hole becomes a `gap` event
    DUPLICATE = 2
    LATE = 3  # fills an open gap
    RESET = 4  # first message of a new session
    UNSEQUENCED = 5  # no source sequence: passes through


@dataclass(slots=True)
class _Instrument:
    last: int
    max_ts: int
    session: int = 0
    first: int = 0  # the session's first number seen; open numbers below it are unknown, not gaps
    gap_lo: list[int] = field(default_factory=list)  # open gaps as inclusive ranges, sorted by lo
    gap_hi: list[int] = field(default_factory=list)


class SequenceTracker:
    """Classifies messages of many instruments; one tracker per source partition."""

    def __init__(self, reset_floor: int = 1, session_gap_us: int = 3_600_000_000, max_gap_ranges: int = 10_000):
        self.reset_floor = reset_floor
        self.session_gap_us = session_gap_us
        self.max_gap_ranges = max_gap_ranges
        self._state: dict[tuple[str, str, str], _Instrument] = {}

    def __len__(self) -> int:
        return len(self._state)

    def to_state(self) -> list:
        """Plain containers (msgpack-ready) holding everything needed to resume."""
        return [
            [*key, st.last, st.max_ts, st.session, st.first, st.gap_lo, st.gap_hi] for key, st in self._state.items()
        ]

    def load_state(self, state: list) -> None:
        for kind, exchange, symbol, last, max_ts, session, first, gap_lo, gap_hi in state:
            self._state[(kind, exchange, symbol)] = _Instrument(
                last, max_ts, session, first, list(gap_lo), list(gap_hi)
            )

    def open_gaps(self, kind: str, exchange: str, symbol: str) -> list[tuple[int, int]]:
        """Missing ranges (inclusive) of the current session, oldest first."""
        state = self._state.get((kind, exchange, symbol))
        if state is None:
            return []
        return [(lo, hi) for lo, hi in zip(state.gap_lo, state.gap_hi, strict=True) if hi >= state.first]

    def classify(self, key: tuple[str, str, str], seq: int, ts: int) -> tuple[SeqClass, SequenceEvent | None]:
        """Classify one message; the event (gap or reset) is returned without source position filled in."""
        state = self._state.get(key)
        if state is None:
            self._state[key] = _first_seen(seq, ts, session=0)
            return SeqClass.IN_ORDER, None
        last = state.last
        if seq == last + 1:
            state.last = seq
            if ts > state.max_ts:
                state.max_ts = ts
            return SeqClass.IN_ORDER, None
        if seq > last:
            event = _event("gap", key, state.session, last + 1, seq, seq - last - 1, ts, state.max_ts)
            self._add_gap(state, last + 1, seq - 1)
            state.last = seq
            if ts > state.max_ts:
                state.max_ts = ts
            return SeqClass.GAP, event
        if ts > state.max_ts and (seq <= self.reset_floor or ts - state.max_ts >= self.session_gap_us):
            event = _event("reset", key, state.session, last + 1, seq, 0, ts, state.max_ts)
            self._state[key] = _first_seen(seq, ts, session=state.session + 1)
            return SeqClass.RESET, event
        if _take_from_gaps(state, seq):
            return SeqClass.LATE, None
        return SeqClass.DUPLICATE, None

    def _add_gap(self, state: _Instrument, lo: int, hi: int) -> None:
        state.gap_lo.append(lo)
        state.gap_hi.append(hi)
        if len(state.gap_lo) > self.max_gap_ranges:
            # Bounded memory: the oldest hole is forgotten; a very late fill of it will count as a duplicate.
            del state.gap_lo[0], state.gap_hi[0]

    def check_batch(self, batch: IngestBatch) -> IngestBatch:
        """Classify every record of a batch (in offset order) and collect its gap/reset events.

        Reads four columns of the batch's rows; the next number of a known instrument (nearly every message) is
        handled inline, the rest goes through `classify`. Same verdicts, fewer calls: this runs for every message.
        """
        classes: list[int] = []
        events: list[SequenceEvent] = []
        batch.classes = classes
        batch.sequence_events = events
        records = batch.records
        if not records:
            return batch
        kind = batch.kind
        state_of = self._state.get
        add = classes.append
        in_order, unsequenced = SeqClass.IN_ORDER, SeqClass.UNSEQUENCED
        sequences = column_of(records, "source_sequence")
        if sequences.count(None) == len(sequences):
            classes.extend([unsequenced] * len(sequences))
            return batch
        columns = zip(
            sequences,
            column_of(records, "exchange"),
            column_of(records, "symbol"),
            column_of(records, "timestamp"),
            batch.offsets,
            strict=True,
        )
        for seq, exchange, symbol, ts, offset in columns:
            if seq is None:
                add(unsequenced)
                continue
            key = (kind, exchange, symbol)
            state = state_of(key)
            if state is not None and seq == state.last + 1:
                state.last = seq
                if ts > state.max_ts:
                    state.max_ts = ts
                add(in_order)
                continue
            cls, event = self.classify(key, seq, ts)
            add(cls)
            if event is not None:
                events.append(_placed(event, batch, offset))
        return batch


class CompiledSequenceTracker:
    """`SequenceTracker`'s rules in compiled code (`k2_native.SequenceTracker`), column-wise: what the flow runs.

    The Python `SequenceTracker` is the reference: the same verdicts, events and state (differential property tests,
    tests/unit/test_native_sequence.py), so a snapshot of either resumes in the other. The verdicts come as bytes,
    one `SeqClass` number per record. The Python loop cost a third of a microsecond per message on the flow's one
    busy thread (benchmarks/report.md, "Design measurements: Flow thread and committer").
    """

    def __init__(self, reset_floor: int = 1, session_gap_us: int = 3_600_000_000, max_gap_ranges: int = 10_000):
        self._native = k2_native.SequenceTracker(reset_floor, session_gap_us, max_gap_ranges)

    def __len__(self) -> int:
        return len(self._native)

    def to_state(self) -> list:
        return self._native.to_state()

    def load_state(self, state: list) -> None:
        self._native.load_state(state)

    def open_gaps(self, kind: str, exchange: str, symbol: str) -> list[tuple[int, int]]:
        return self._native.open_gaps(kind, exchange, symbol)

    def check_batch(self, batch: IngestBatch) -> IngestBatch:
        """Classify every record of a batch (in offset order) and collect its gap/reset events."""
        classes = bytearray()
        events: list[SequenceEvent] = []
        start = 0
        for part in _sequence_columns(batch.records):
            verdicts, found = self._native.check(batch.kind, part)
            classes += verdicts
            for index, name, exchange, symbol, session, expected, received, missing, ts, previous in found:
                event = _event(name, (batch.kind, exchange, symbol), session, expected, received, missing, ts, previous)
                events.append(_placed(event, batch, batch.offsets[start + index]))
            start += part.num_rows
        batch.classes = bytes(classes)
        batch.sequence_events = events
        return batch


_CHECKED = ("source_sequence", "exchange", "symbol", "timestamp")
_CHECKED_TYPES = (pa.int64(), pa.large_string(), pa.large_string(), pa.int64())


def _sequence_columns(records: Sequence) -> list[pa.RecordBatch]:
    """The four columns the check reads, as record batches in order: a `RowTable`'s own chunks (no copy), else
    built from the row objects."""
    if isinstance(records, RowTable):
        return records.table.select(_CHECKED).to_batches()
    if not records:
        return []
    columns = [pa.array(column_of(records, name), type) for name, type in zip(_CHECKED, _CHECKED_TYPES, strict=True)]
    return [pa.record_batch(columns, names=_CHECKED)]


def _event(
    name: str,
    key: tuple[str, str, str],
    session: int,
    expected: int,
    received: int,
    missing: int,
    ts: int,
    previous_ts: int,
) -> SequenceEvent:
    """A gap or reset event (fields in the order of the compiled tracker's event tuples), without its position."""
    kind, exchange, symbol = key
    return SequenceEvent(
        event=name,  # type: ignore[arg-type]
        kind=kind,
        exchange=exchange,
        symbol=symbol,
        session=session,
        expected_sequence=expected,
        received_sequence=received,
        missing_count=missing,
        timestamp=ts,
        previous_timestamp=previous_ts,
        source_topic="",
        source_partition=-1,
        source_offset=-1,
    )


def _placed(event: SequenceEvent, batch: IngestBatch, offset: int) -> SequenceEvent:
    """`event` at the source position of the message at `offset` of `batch`."""
    event.source_topic = batch.topic
    event.source_partition = batch.partition
    event.source_offset = offset
    return event


def _first_seen(seq: int, ts: int, session: int) -> _Instrument:
    """State after the first message of a session. The numbers below it are open but not reported as a gap:
    joining mid-session they were never ours to see, and a reordered earlier message must still count as late."""
    if seq > 0:
        return _Instrument(last=seq, max_ts=ts, session=session, first=seq, gap_lo=[0], gap_hi=[seq - 1])
    return _Instrument(last=seq, max_ts=ts, session=session, first=seq)


def _take_from_gaps(state: _Instrument, seq: int) -> bool:
    """Remove `seq` from the open gaps; False when it was not missing (so it is a duplicate)."""
    i = bisect_right(state.gap_lo, seq) - 1
    if i < 0 or seq > state.gap_hi[i]:
        return False
    lo, hi = state.gap_lo[i], state.gap_hi[i]
    if lo == hi:
        del state.gap_lo[i], state.gap_hi[i]
    elif seq == lo:
        state.gap_lo[i] = seq + 1
    elif seq == hi:
        state.gap_hi[i] = seq - 1
    else:
        state.gap_hi[i] = seq - 1
        state.gap_lo.insert(i + 1, seq + 1)
        state.gap_hi.insert(i + 1, hi)
    return True
