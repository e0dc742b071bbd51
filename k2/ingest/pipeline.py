"""The one place the ingest steps are built from settings: validate -> sequence check -> dedupe -> to_arrow.

The Bytewax flow (`flows/ingest.py`, through `k2.flow.steps`), the realtime tail (`k2.query.hybrid`), tests and
benchmarks take their steps from here, so every path runs the same rules, horizons and order. The stateful steps
keep their state per source partition (`PartitionSteps`): one sequence tracker and one deduper each.
"""

from __future__ import annotations

import msgspec

from k2.formats.frames import any_framed
from k2.formats.resolve import schema_source
from k2.formats.route import FramedDecoder
from k2.ingest.columnar import ArrowBatch, to_arrow
from k2.ingest.dedupe import Deduper
from k2.ingest.mapping import load_mappings
from k2.ingest.sequence import CompiledSequenceTracker
from k2.ingest.validate import Rules, validate_batch, with_accepted
from k2.model.batch import IngestBatch, RawBatch
from k2.model.schemas import Kind
from k2.ops.config import Settings


def kind_for_topic(topic: str, settings: Settings) -> Kind | None:
    """Which schema a topic carries: the configured topics, else by name (`...trades`, `...quotes`)."""
    if topic == settings.trades_topic:
        return "trade"
    if topic == settings.quotes_topic:
        return "quote"
    if "quote" in topic:
        return "quote"
    if "trade" in topic:
        return "trade"
    return None


class Pipeline:
    """The ingest steps with one settings' rules and state bounds."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.rules = Rules.from_settings(settings)
        self.mappers = load_mappings(settings.mapping) if settings.mapping else {}
        self.framed = FramedDecoder(schema_source(settings.schema_registry_url, settings.schema_dir))

    def validate(self, raw: RawBatch) -> IngestBatch:
        """Wire messages -> exact rows and dead letters; the schema is the topic's (a topic of neither kind makes
        every message a dead letter). Avro/Protobuf messages (Confluent-framed, `k2.formats`) are decoded to K2's
        JSON form first; a topic with a mapping (`K2_MAPPING`) is mapped to K2's fields; then the exact JSON path.
        Rows the compiled Kafka reader accepted already (`raw.accepted`) are kept; only the rest is validated here."""
        if raw.accepted is not None:
            return with_accepted(raw, self.validate)
        if any_framed(raw.values):
            return self.framed.validate(raw, self.kind_of(raw.topic), self._validate_json)
        return self._validate_json(raw, None)

    def _validate_json(self, raw: RawBatch, originals: list[bytes] | None) -> IngestBatch:
        mapper = self.mappers.get(raw.topic)
        if mapper is None:
            return validate_batch(raw, self.kind_of(raw.topic), self.rules, originals)  # type: ignore[arg-type]
        mapped = msgspec.structs.replace(raw, values=mapper.apply_all(raw.values))
        return validate_batch(mapped, mapper.kind, self.rules, originals=originals or raw.values)

    def kind_of(self, topic: str) -> Kind | None:
        """What a topic carries: its mapping's kind when it has one, else `kind_for_topic`."""
        mapper = self.mappers.get(topic)
        return mapper.kind if mapper is not None else kind_for_topic(topic, self.settings)

    def reader_kind(self, topic: str) -> Kind | None:
        """The kind the compiled Kafka reader may validate `topic` as: None for a mapped topic (its messages are
        mapped to K2's fields first) or a topic of neither kind."""
        return None if topic in self.mappers else kind_for_topic(topic, self.settings)

    def sequence_tracker(self) -> CompiledSequenceTracker:
        settings = self.settings
        return CompiledSequenceTracker(settings.reset_floor, settings.session_gap_us, settings.max_gap_ranges)

    def deduper(self) -> Deduper:
        return Deduper(self.settings.dedupe_horizon_us, self.settings.dedupe_max_keys)

    def for_partition(self) -> PartitionSteps:
        """Fresh per-partition state: feed it one source partition's batches, in offset order."""
        return PartitionSteps(self)


class PartitionSteps:
    """One source partition through all the steps, with that partition's sequence and dedupe state."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.tracker = pipeline.sequence_tracker()
        self.deduper = pipeline.deduper()

    def check(self, batch: IngestBatch) -> IngestBatch:
        """Sequence check, then dedupe, of a validated batch."""
        return self.deduper.dedupe_batch(self.tracker.check_batch(batch))

    def process(self, raw: RawBatch) -> IngestBatch:
        return self.check(self.pipeline.validate(raw))

    def to_arrow(self, raw: RawBatch) -> ArrowBatch:
        """A raw batch all the way to the Arrow tables the writer takes."""
        return to_arrow(self.process(raw))
