"""The Bytewax sink that hands the flow's Arrow batches to the one `IcebergWriter`, and its recovery state.

The sink has one partition (`COMMITTER`): a single committer per table avoids commit conflicts. Its snapshot at an
epoch end is the writer's pending work (`k2.storage.pending`), taken back by `IcebergWriter.recover` on restart.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from functools import partial

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from pyiceberg.table import Table

from k2.ingest.columnar import ArrowBatch
from k2.ops.config import Settings
from k2.ops.degrade import DegradationManager
from k2.storage.pending import PendingSnapshot
from k2.storage.writer import IcebergWriter, writer_from_settings

COMMITTER = "iceberg"  # the one sink partition: a single committer per table avoids commit conflicts


# The flow collects garbage rarely (see `k2.flow.steps.tune_process`), so cyclic garbage (pyiceberg's metadata objects
# of every commit among it) would wait for a full collection that may not come for many minutes: in the soak the
# flow's RSS crept without full collections and stayed flat with them. One every interval, at an epoch end, costs
# little; collecting as often by thresholds cost much more throughput (figures: benchmarks/report.md,
# "Design measurements: Garbage collection").
FULL_COLLECTION_SECONDS = 20.0


# What the committer's snapshot is: taken as a PendingSnapshot, given back after a restart as its bytes.
SinkState = bytes | PendingSnapshot | None


class _CommitterPartition(StatefulSinkPartition[ArrowBatch, SinkState]):
    def __init__(self, writer: IcebergWriter, resume_state: bytes | None = None):
        self.writer = writer
        self._collected_at = time.monotonic()
        if resume_state is not None:
            writer.recover(resume_state)

    def write_batch(self, values: list[ArrowBatch]) -> None:
        for batch in values:
            self.writer.write(batch)

    def snapshot(self) -> PendingSnapshot | None:
        # Runs after the epoch's writes: hand everything to the committer and return what may not be in Iceberg
        # yet. The epoch's state then covers its data without waiting for the commit (waiting here took much of the
        # flow's time: benchmarks/report.md, "Design measurements: Commits at epoch ends"); a restart from this
        # epoch commits the rest (`recover`).
        state = self.writer.end_epoch()
        if time.monotonic() - self._collected_at >= FULL_COLLECTION_SECONDS:
            gc.collect()
            self._collected_at = time.monotonic()
        return state

    def close(self) -> None:
        self.writer.close()


class IcebergSink(FixedPartitionedSink[ArrowBatch, SinkState]):
    """Bytewax sink around `IcebergWriter`; upstream items are `(COMMITTER, ArrowBatch)`."""

    def __init__(self, writer_factory: Callable[[], IcebergWriter]):
        self.writer_factory = writer_factory

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        degradation: DegradationManager | None = None,
        tables: Callable[[], dict[str, Table]] | None = None,
    ) -> IcebergSink:
        """The flow's sink on the configured warehouse; its writer takes the tables from `tables` when given."""
        return cls(partial(writer_from_settings, settings, degradation, tables))

    def list_parts(self) -> list[str]:
        return [COMMITTER]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: SinkState) -> _CommitterPartition:
        return _CommitterPartition(self.writer_factory(), resume_state)
