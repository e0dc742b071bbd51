"""What every loader yields, and the ways out of a loader: Kafka-shaped batches and NDJSON files.

One input line, one `Loaded` message: a line the loader could convert carries wire bytes; a line it could not
carries its raw bytes (verbatim) and a `LoadError` naming the file, the line and why. The raw bytes still go
downstream, where validation turns them into a dead letter (a CSV line is no JSON wire message), so the accounting
"rows + dead letters + duplicates = lines" holds from the input file to Iceberg, and the caller can count and show
the errors with their positions before anything is ingested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import msgspec

from k2.loaders.synthetic import partition_of
from k2.model.batch import RawBatch
from k2.model.schemas import KINDS, Kind

MAX_KEPT_ERRORS = 1_000  # a whole broken file should not hold every error in memory; the count stays exact


class LoadError(msgspec.Struct, frozen=True, gc=False):
    """A line a loader could not turn into a wire message."""

    path: str
    line: int  # 1-based, as editors and `sed -n` count
    reason: str  # machine-readable, e.g. `asx_columns`, `asx_decimal:price`, `not_utf8`
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}: {self.detail}"


class Loaded(msgspec.Struct, frozen=True, gc=False):
    """One input line on its way to a topic: wire bytes, or the raw line when `error` says why not."""

    kind: Kind
    key: bytes | None  # `EXCHANGE:SYMBOL`: one instrument, one partition
    value: bytes
    error: LoadError | None = None


class Tally:
    """Counts messages per kind and keeps the load errors, while passing the messages through."""

    def __init__(self) -> None:
        self.by_kind: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.error_count = 0
        self.errors: list[LoadError] = []

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def count(self, messages: Iterable[Loaded]) -> Iterator[Loaded]:
        for message in messages:
            self.by_kind[message.kind] += 1
            if message.error is not None:
                self.error_count += 1
                if len(self.errors) < MAX_KEPT_ERRORS:
                    self.errors.append(message.error)
            yield message


def read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without its `\\n` or `\\r\\n`), as bytes: decoding is each loader's business."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            yield number, line.rstrip(b"\r\n")


def to_batches(
    messages: Iterable[Loaded],
    topics: Mapping[str, str] | None = None,
    *,
    partitions: int = 1,
    batch_size: int = 5_000,
) -> Iterator[RawBatch]:
    """Group messages into per-(topic, partition) batches with consecutive offsets, as a Kafka consumer sees them.

    Instruments go to partitions by key exactly like the synthetic feed's (crc32), so per-instrument order holds.
    For tests and embedded runs: the flow takes these batches on any Bytewax source.
    """
    topics = topics or {"trade": "market.trades", "quote": "market.quotes"}
    pending: dict[tuple[str, int], list[bytes]] = {}
    next_offset: dict[tuple[str, int], int] = {}

    def flush(slot: tuple[str, int]) -> RawBatch:
        values, start = pending.pop(slot), next_offset.get(slot, 0)
        next_offset[slot] = start + len(values)
        return RawBatch(slot[0], slot[1], list(range(start, start + len(values))), values)

    for message in messages:
        slot = (topics[message.kind], partition_of(message.key or b"", partitions))
        values = pending.setdefault(slot, [])
        values.append(message.value)
        if len(values) >= batch_size:
            yield flush(slot)
    for slot in list(pending):
        yield flush(slot)


def write_ndjson(
    messages: Iterable[Loaded], out_dir: Path, progress: Callable[[int], None] | None = None
) -> dict[str, Path]:
    """Write `trades.ndjson` / `quotes.ndjson` under `out_dir` (one message a line) for the flow's file source.

    The file names carry the kind (`K2_INPUT_FILE=<dir>/quotes.ndjson` gets topic `file.quotes.quotes`), and a
    bad line is written as its raw bytes, so the file source reads exactly one message per input line.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / f"{kind}s.ndjson" for kind in KINDS}
    files = {kind: path.open("wb") for kind, path in paths.items()}
    try:
        for count, message in enumerate(messages, 1):
            out = files[message.kind]
            out.write(message.value)
            out.write(b"\n")
            if progress is not None and count % 10_000 == 0:
                progress(count)
    finally:
        for out in files.values():
            out.close()
    return paths
