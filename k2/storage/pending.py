"""A writer's pending work as recovery state: what may not be in Iceberg yet when a Bytewax epoch ends.

`IcebergWriter.end_epoch` returns a `PendingSnapshot` (the commits handed to the committer and not known done, the
side-table rows still buffered, counts and positions); Bytewax pickles it into the recovery store only when
recovery is on, and a restart hands its bytes to `IcebergWriter.recover`.
"""

from __future__ import annotations

import msgspec
import pyarrow as pa

from k2.ingest.columnar import empty_table


def _ipc(name: str, parts: list[pa.Table]) -> memoryview:
    """Arrow IPC stream bytes of a table's parts, written once into a buffer of the exact size (a growing
    output stream copied an epoch's bytes several times: benchmarks/report.md,
    "Design measurements: Pending state")."""
    table = pa.concat_tables(parts) if parts else empty_table(name)
    size = pa.MockOutputStream()
    with pa.ipc.new_stream(size, table.schema) as stream:
        stream.write_table(table)
    buffer = pa.allocate_buffer(size.size())
    with pa.ipc.new_stream(pa.FixedSizeBufferWriter(buffer), table.schema) as stream:
        stream.write_table(table)
    return memoryview(buffer)  # type: ignore[return-value]  # msgpack takes it as bytes, one copy less


class PendingSnapshot:
    """A writer's pending work at an epoch end, serialised only when Bytewax pickles it.

    Bytewax takes a snapshot at every epoch end but pickles it only when recovery is on; the Arrow tables held
    here are immutable, so the bytes written later are those of the moment of the snapshot. Unpickled, it is the
    bytes `IcebergWriter.recover` takes.
    """

    __slots__ = ("buffered", "commits", "counts", "kinds", "positions")

    def __init__(
        self,
        commits: list[tuple[str, dict[str, int], dict[str, list[int]], list[pa.Table]]],
        buffered: list[tuple[str, list[pa.Table]]],
        positions: dict[str, int],
        counts: dict[str, list[int]],
        kinds: dict[str, str],
    ):
        self.commits, self.buffered, self.positions = commits, buffered, positions
        self.counts, self.kinds = counts, kinds

    def to_bytes(self) -> bytes:
        return _encode_state(
            _PendingState(
                [(name, seam, counts, _ipc(name, parts)) for name, seam, counts, parts in self.commits],
                [(name, _ipc(name, parts)) for name, parts in self.buffered],
                self.positions,
                self.counts,
                self.kinds,
            )
        )

    def __reduce__(self) -> tuple[type[bytes], tuple[bytes]]:
        return bytes, (self.to_bytes(),)


class _PendingState(msgspec.Struct, array_like=True):
    commits: list[tuple[str, dict[str, int], dict[str, list[int]], bytes]]  # table, seam, counts, Arrow IPC
    side_rows: list[tuple[str, bytes]]  # table, Arrow IPC of its buffered rows
    positions: dict[str, int]  # next offset reached per partition
    counts: dict[str, list[int]] = {}  # per partition: messages, duplicates not handed to a commit yet
    kinds: dict[str, str] = {}  # per partition: the data table its counts belong to


_encode_state = msgspec.msgpack.Encoder().encode
decode_state = msgspec.msgpack.Decoder(_PendingState).decode
