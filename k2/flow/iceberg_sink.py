"""The Bytewax sink that hands the flow's Arrow batches to the one `IcebergWriter`, and its recovery state.

The sink has one partition (`COMMITTER`): a single committer per table avoids commit conflicts. Its snapshot at an
epoch end is the writer's pending work (`k2.storage.pending`), taken back by `IcebergWriter.recover` on restart.

The committer also sends each batch's dead letters to the DLQ topic (`DeadLetterTopic`) and confirms their delivery
before any commit and before its snapshot, so no seam (from which a restart without recovery state resumes) and no
recovery state ever passes a dead letter the topic lacks. Done here, in the one process that commits, the wait for
the broker comes once per commit; a step that confirmed every batch's dead letters before passing it on held the
flow's thread up at each (benchmarks/report.md, "Design measurements: Flow thread and committer").
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from functools import partial
from typing import Protocol

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from pyiceberg.table import Table

from k2.ingest.columnar import ArrowBatch
from k2.model.batch import position_key
from k2.model.schemas import DeadLetter
from k2.ops.config import Settings
from k2.ops.degrade import DegradationManager
from k2.storage.catalog import DEAD_LETTERS
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


class DeadLetterTopic(Protocol):
    """Where the committer sends dead letters: the DLQ topic (`k2.kafka.producer.DeadLetterPublisher`)."""

    def send(self, dead_letters: list[DeadLetter]) -> None: ...

    def confirm(self) -> None:
        """Return once every dead letter sent is delivered; raise otherwise."""


class _CommitterPartition(StatefulSinkPartition[ArrowBatch, SinkState]):
    def __init__(
        self, writer: IcebergWriter, resume_state: bytes | None = None, dead_letters: DeadLetterTopic | None = None
    ):
        self.writer = writer
        self.dead_letters = dead_letters
        if dead_letters is not None:
            writer.before_commit = dead_letters.confirm
        self._collected_at = time.monotonic()
        if resume_state is not None:
            writer.recover(resume_state)

    def write_batch(self, values: list[ArrowBatch]) -> None:
        for batch in values:
            if self.dead_letters is not None and batch.dead_letters:
                # Before the batch reaches the writer: a commit it starts confirms these first. Those below the
                # dead letters' seam are in Iceberg, so their delivery was confirmed before (a source re-sending).
                seam = self.writer.seams[DEAD_LETTERS].get(position_key(batch.topic, batch.partition), 0)
                self.dead_letters.send([dead for dead in batch.dead_letters if dead.source_offset >= seam])
            self.writer.write(batch)

    def snapshot(self) -> PendingSnapshot | None:
        if self.dead_letters is not None:
            self.dead_letters.confirm()  # the state about to be stored covers them
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

    def __init__(self, writer_factory: Callable[[], IcebergWriter], dead_letters: DeadLetterTopic | None = None):
        self.writer_factory = writer_factory
        self.dead_letters = dead_letters

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        degradation: DegradationManager | None = None,
        tables: Callable[[], dict[str, Table]] | None = None,
        dead_letters: DeadLetterTopic | None = None,
    ) -> IcebergSink:
        """The flow's sink on the configured warehouse; its writer takes the tables from `tables` when given, and
        dead letters go to `dead_letters` (the DLQ topic) when given."""
        return cls(partial(writer_from_settings, settings, degradation, tables), dead_letters)

    def list_parts(self) -> list[str]:
        return [COMMITTER]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: SinkState) -> _CommitterPartition:
        return _CommitterPartition(self.writer_factory(), resume_state, self.dead_letters)
