"""Bytewax step logic: thin stateful wrappers that hold K2's per-partition state objects.

Bytewax's `stateful_map` deep-copies its state at every epoch close; with a million remembered keys that is
seconds. These steps snapshot their state as msgpack bytes instead (one C-level pass), and resume from them.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import pyarrow as pa
from bytewax.operators import StatefulLogic

from k2.ingest.pipeline import Pipeline
from k2.model.batch import IngestBatch, RawBatch
from k2.ops import tracing
from k2.ops.metrics import record_batch

log = logging.getLogger(__name__)

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class _PartitionStep(StatefulLogic[IngestBatch, IngestBatch, bytes]):
    """Runs `process` on every batch of one source partition; the state object snapshots as bytes.

    Each batch gets a span named `name` (k2.ops.tracing), with the attributes `outcome` finds in the processed batch.
    """

    def __init__(
        self,
        state: Any,
        process: Callable[[IngestBatch], IngestBatch],
        resume: bytes | None,
        name: str,
        outcome: Callable[[IngestBatch], dict[str, int]],
    ):
        self.state = state
        self.process = process
        self.name = name
        self.outcome = outcome
        if resume is not None:
            state.load_state(_decode(resume))

    def on_item(self, value: IngestBatch) -> tuple[Iterable[IngestBatch], bool]:
        with tracing.batch_span(self.name, value) as traced:
            batch = self.process(value)
            if traced:
                for key, count in self.outcome(batch).items():
                    traced.set(key, count)
        return (batch,), StatefulLogic.RETAIN

    def snapshot(self) -> bytes:
        return _encode(self.state.to_state())


def sequence_check(pipeline: Pipeline) -> Callable[[bytes | None], StatefulLogic]:
    """Builder for the sequence-check step: one `SequenceTracker` per source partition."""

    def build(resume: bytes | None) -> StatefulLogic:
        tracker = pipeline.sequence_tracker()
        return _PartitionStep(tracker, tracker.check_batch, resume, "sequence", _sequence_outcome)

    return build


def dedupe(pipeline: Pipeline) -> Callable[[bytes | None], StatefulLogic]:
    """Builder for the dedupe step: one `Deduper` per source partition."""

    def build(resume: bytes | None) -> StatefulLogic:
        deduper = pipeline.deduper()
        return _PartitionStep(deduper.recent, deduper.dedupe_batch, resume, "dedupe", _dedupe_outcome)

    return build


def _sequence_outcome(batch: IngestBatch) -> dict[str, int]:
    gaps = sum(1 for event in batch.sequence_events if event.event == "gap")
    return {
        "gaps": gaps,
        "resets": len(batch.sequence_events) - gaps,
        "missing": sum(event.missing_count for event in batch.sequence_events),
    }


def _dedupe_outcome(batch: IngestBatch) -> dict[str, int]:
    return {"rows": len(batch.records), "duplicates": batch.duplicates}


def validate(pipeline: Pipeline) -> Callable[[RawBatch], IngestBatch]:
    """The validate step: the pipeline's validation of each batch, with its span."""

    def step(raw: RawBatch) -> IngestBatch:
        with tracing.batch_span("validate", raw) as traced:
            batch = pipeline.validate(raw)
            traced.set("rows", len(batch.records))
            traced.set("dead_letters", len(batch.dead_letters))
        return batch

    return step


def observe(step_id: str, keyed: tuple[str, IngestBatch]) -> None:
    """Metrics for a checked batch, its outcome as a span, and (at debug level) a line naming its source positions
    and outcome."""
    batch = keyed[1]
    with tracing.batch_span(
        "observe",
        batch,
        rows=len(batch.records),
        dead_letters=len(batch.dead_letters),
        duplicates=batch.duplicates,
        sequence_events=len(batch.sequence_events),
    ):
        record_batch(batch)
        _log_batch(batch)


def _log_batch(batch: IngestBatch) -> None:
    if log.isEnabledFor(logging.DEBUG) and batch.source_offsets:
        log.debug(
            "batch %s offsets %s..%s: %s in, %s rows, %s dead letters, %s duplicates",
            batch.key,
            batch.first_offset,
            batch.next_offset - 1,
            batch.messages_in,
            len(batch.records),
            len(batch.dead_letters),
            batch.duplicates,
            extra={
                "topic": batch.topic,
                "partition": batch.partition,
                "first_offset": batch.first_offset,
                "next_offset": batch.next_offset,
                "messages": batch.messages_in,
                "rows": len(batch.records),
                "dead_letters": len(batch.dead_letters),
                "duplicates": batch.duplicates,
                "sequence_events": len(batch.sequence_events),
            },
        )


def tune_process() -> None:
    """Process settings for the flow (called once at its start).

    Collect rarely: the flow allocates millions of short-lived objects and holds no cycles worth chasing. With the
    default thresholds, decoding spent much of its time in the young-generation collector (benchmarks/report.md,
    "Design measurements: Garbage collection").

    Arrow allocates through jemalloc unless `ARROW_DEFAULT_MEMORY_POOL` says otherwise (the flow's package chooses it
    before pyarrow loads, `flows/__init__.py`, so Arrow's C++ code uses it too; here only pyarrow's own calls follow
    when pyarrow was loaded first, e.g. in a benchmark that runs the steps in its own process): the flow allocates and
    frees large Arrow buffers at every commit. mimalloc (pyarrow's default) keeps them, with a higher peak than the
    system allocator. glibc's malloc keeps what a burst took: in the soak (tests/soak) the flow's RSS crept and
    stepped up after every stall, never coming back. jemalloc returns freed pages after a second (Arrow's decay
    time): flat between bursts, and most of a stall's growth goes back. Its cost: a higher peak than glibc's on the
    Kafka benchmark, for a flat line over hours (figures: benchmarks/report.md,
    "Design measurements: Arrow memory pool").
    The system allocator remains the fallback for a pyarrow built without jemalloc.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    chosen = os.environ.get("ARROW_DEFAULT_MEMORY_POOL") or "jemalloc"
    if chosen == "jemalloc" and pa.default_memory_pool().backend_name != "jemalloc":
        try:
            pa.set_memory_pool(pa.jemalloc_memory_pool())
        except NotImplementedError:  # a pyarrow build without jemalloc
            pa.set_memory_pool(pa.system_memory_pool())
