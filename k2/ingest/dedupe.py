"""Dedupe on the natural key, with bounded memory and no wall clock.

- Sequenced messages: the key is `(exchange, symbol, source_sequence)` within the instrument's session, and the
  sequence tracker's state already knows exactly which numbers were seen; its DUPLICATE verdict is final.
- Unsequenced messages: the key is `(exchange, symbol, trade_id | quote_id)`, remembered in an insertion-ordered
  map bounded by an event-time horizon (keys older than the newest event time minus the horizon are forgotten) and
  a size cap (the oldest keys go first). A repeat that arrives after its key was forgotten gets through: that is
  the documented bound, and both bounds are settings.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import compress

from k2.ingest.rows import RowTable, column_of, mask_without
from k2.ingest.sequence import SeqClass
from k2.model.batch import IngestBatch


class RecentKeys:
    """Keys seen within an event-time horizon, at most `max_keys` of them."""

    def __init__(self, horizon_us: int, max_keys: int):
        self.horizon_us = horizon_us
        self.max_keys = max_keys
        self._seen: dict[tuple[str, str, str], int] = {}
        self._newest_ts = -(2**63)

    def __len__(self) -> int:
        return len(self._seen)

    def to_state(self) -> list:
        return [self._newest_ts, [[*key, ts] for key, ts in self._seen.items()]]

    def load_state(self, state: list) -> None:
        self._newest_ts, items = state
        self._seen = {(exchange, symbol, ident): ts for exchange, symbol, ident, ts in items}

    def add(self, key: tuple[str, str, str], ts: int) -> bool:
        """Remember `key`; False when it was already remembered (a duplicate)."""
        seen = self._seen
        if key in seen:
            return False
        seen[key] = ts
        if ts > self._newest_ts:
            self._newest_ts = ts
        return True

    def evict(self) -> None:
        """Forget keys past the horizon and beyond the cap; call once per batch, not per message."""
        seen = self._seen
        excess = len(seen) - self.max_keys
        horizon = self._newest_ts - self.horizon_us
        stale = []
        for key, ts in seen.items():
            if excess > 0:
                excess -= 1
            elif ts >= horizon:
                # Insertion order is close to event-time order; stop at the first key still inside the horizon.
                break
            stale.append(key)
        for key in stale:
            del seen[key]


class Deduper:
    """Drops duplicates from checked batches of one source partition."""

    def __init__(self, horizon_us: int, max_keys: int):
        self.recent = RecentKeys(horizon_us, max_keys)

    def dedupe_batch(self, batch: IngestBatch) -> IngestBatch:
        """Drop the sequence tracker's duplicates and repeated ids of unsequenced records, keeping the order.

        Column-wise: a scan for each class that needs attention (usually only a few duplicates), not a branch
        per record.
        """
        classes = batch.classes
        if classes is None:
            raise ValueError("dedupe needs a sequence-checked batch")
        records, offsets, source_ts = batch.records, batch.offsets, batch.source_timestamps
        duplicate, unsequenced = SeqClass.DUPLICATE, SeqClass.UNSEQUENCED
        drop: set[int] = set()
        if duplicate in classes:
            drop.update(_positions(classes, duplicate))
        if unsequenced in classes:
            add = self.recent.add
            ident = "quote_id" if batch.kind == "quote" else "trade_id"
            exchanges, symbols = column_of(records, "exchange"), column_of(records, "symbol")
            idents, timestamps = column_of(records, ident), column_of(records, "timestamp")
            for i in _positions(classes, unsequenced):
                if not add((exchanges[i], symbols[i], idents[i]), timestamps[i]):
                    drop.add(i)
        self.recent.evict()
        if drop:
            dropped = sorted(drop)
            batch.duplicate_offsets = batch.duplicate_offsets + [offsets[i] for i in dropped]
            keep = mask_without(len(classes), dropped)
            if isinstance(records, RowTable):
                batch.records = records.without(dropped)  # type: ignore[assignment]
            else:
                batch.records = list(compress(records, keep))
            batch.offsets = list(compress(offsets, keep))
            kept = compress(classes, keep)
            batch.classes = bytes(kept) if isinstance(classes, bytes) else list(kept)
            if source_ts is not None:
                batch.source_timestamps = list(compress(source_ts, keep))
        return batch


def _positions(classes: Sequence[int], value: int) -> Iterator[int]:
    """Where `value` is in `classes`, ascending; a search in C for the compiled check's bytes."""
    if isinstance(classes, bytes):
        i = classes.find(value)
        while i >= 0:
            yield i
            i = classes.find(value, i + 1)
    else:
        yield from (i for i, cls in enumerate(classes) if cls == value)
