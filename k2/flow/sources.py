"""Embedded sources for a machine without a broker: the synthetic feed and a file of messages.

Both deliver `RawBatch`es with stable positions (topic, partition, offset) and resume from a snapshot, so the
flow's commit protocol treats them exactly like Kafka partitions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from bytewax.inputs import FixedPartitionedSource, Source, StatefulSourcePartition
from pyiceberg.table import Table

from k2.flow.kafka_source import KafkaSource
from k2.ingest.pipeline import Pipeline
from k2.kafka.admin import ensure_topics
from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from k2.model.batch import RawBatch
from k2.model.schemas import Kind
from k2.ops.config import Settings
from k2.ops.degrade import DegradationManager
from k2.ops.stopping import stop_requested
from k2.storage.seams import resume_offsets, start_offsets


class _IteratorPartition(StatefulSourcePartition[RawBatch, int]):
    """Replays a deterministic iterator of batches; the resume state is how many batches were emitted."""

    def __init__(self, batches: Iterator[RawBatch], resume_state: int | None):
        self._emitted = resume_state or 0
        self._batches = itertools.islice(batches, self._emitted, None)

    def next_batch(self) -> list[RawBatch]:
        if stop_requested():
            raise StopIteration  # a clean stop (k2.ops.stopping): the sinks then commit what they hold
        batch = next(self._batches)  # StopIteration ends the partition
        self._emitted += 1
        return [batch]

    def snapshot(self) -> int:
        return self._emitted


class SyntheticSource(FixedPartitionedSource[RawBatch, int]):
    """The seeded synthetic feed, `messages` long; re-running it gives the same messages at the same positions."""

    def __init__(self, config: FeedConfig, batch_size: int = 5_000):
        self.config = config
        self.batch_size = batch_size

    @classmethod
    def from_settings(cls, settings: Settings) -> SyntheticSource:
        config = FeedConfig(
            messages=settings.synthetic_messages, symbols=settings.synthetic_symbols, seed=settings.synthetic_seed
        )
        return cls(config, settings.batch_size)

    def list_parts(self) -> list[str]:
        return ["synthetic"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _IteratorPartition:
        return _IteratorPartition(feed_batches(SyntheticFeed(self.config), self.batch_size), resume_state)


class FileSource(FixedPartitionedSource[RawBatch, int]):
    """Newline-delimited messages of one kind from a file; a message's position is its line number (from 0).

    The positions are named `file.<file stem>.<kind>s/0`, apart from any Kafka topic's.
    """

    def __init__(self, path: str | Path, kind: Kind, batch_size: int = 5_000):
        self.path = Path(path)
        self.topic = f"file.{self.path.stem}.{kind}s"
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return [str(self.path)]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _IteratorPartition:
        return _IteratorPartition(file_batches(self.path, self.topic, self.batch_size), resume_state)


def file_batches(path: Path, topic: str, batch_size: int) -> Iterator[RawBatch]:
    with path.open("rb") as lines:
        offset = 0
        while chunk := list(itertools.islice(lines, batch_size)):
            values = [line.rstrip(b"\r\n") for line in chunk]
            yield RawBatch(topic, 0, list(range(offset, offset + len(values))), values)
            offset += len(values)


def source_from_settings(
    settings: Settings,
    degradation: DegradationManager | None = None,
    tables: Callable[[], dict[str, Table]] | None = None,
) -> Source[RawBatch]:
    """The flow's source as configured (`K2_SOURCE`): Kafka (creating its topics when missing), a file, or the
    synthetic feed. Kafka partitions resume from the warehouse's seams: of `tables` when given (the tables opened
    already), else of the configured warehouse's."""
    if settings.source == "file":
        return FileSource(settings.input_file, settings.input_kind, batch_size=settings.batch_size)
    if settings.source == "kafka":
        topics = [settings.trades_topic, settings.quotes_topic, settings.dlq_topic]
        ensure_topics(settings.kafka_bootstrap, topics, settings.kafka_partitions)
        return KafkaSource(
            settings.kafka_bootstrap,
            [settings.trades_topic, settings.quotes_topic],
            start_offsets=(lambda: resume_offsets(tables())) if tables else partial(start_offsets, settings),
            batch_size=settings.batch_size,
            tail=settings.kafka_tail,
            warmup_messages=settings.resume_warmup_messages,
            degradation=degradation,
            # an idle stream's dead letters still commit (k2.model.batch.tick)
            idle_tick_seconds=settings.epoch_seconds,
            pipeline=Pipeline(settings),  # the reader validates as it reads, by the flow's rules
        )
    return SyntheticSource.from_settings(settings)
