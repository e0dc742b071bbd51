"""K2 ingestion: read -> validate -> sequence_check -> dedupe -> to_arrow -> iceberg (+ dead letters, gap events).

Run: `python -m bytewax.run flows.ingest` (settings from `K2_*` environment variables).
Every item is a batch of one source partition; steps keyed by partition keep per-instrument state together.
`flow` is built on first access (what bytewax.run does), so importing `build_flow` starts no metrics server and
leaves logging alone.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from k2.flow.iceberg_sink import COMMITTER, IcebergSink
from k2.flow.kafka_source import KafkaSource
from k2.flow.sources import FileSource, SyntheticSource
from k2.flow.steps import dedupe, observe, sequence_check, tune_process
from k2.ingest.columnar import to_arrow
from k2.ingest.pipeline import Pipeline
from k2.kafka.admin import ensure_topics
from k2.kafka.producer import DeadLetterPublisher
from k2.model.batch import IngestBatch, RawBatch
from k2.model.schemas import DeadLetter
from k2.ops import tracing
from k2.ops.config import Settings, load_settings
from k2.ops.degrade import DegradationManager, degradation_from_settings
from k2.ops.logs import configure_logging
from k2.ops.metrics import serve_metrics
from k2.ops.stopping import install_stop_handlers
from k2.storage.seams import start_offsets


def build_flow(
    source: Source[RawBatch],
    settings: Settings,
    *,
    iceberg_sink: Sink | None = None,
    publish_dead_letters: Callable[[list[DeadLetter]], None] | None = None,
    sequence_event_sink: Sink | None = None,
) -> Dataflow:
    flow = Dataflow("k2_ingest")
    raw = op.input("read", flow, source)
    pipeline = Pipeline(settings)  # the steps' rules and state bounds (k2.ingest.pipeline)
    validated = op.map("validate", raw, partial(_validate, pipeline=pipeline))
    by_partition = op.key_on("by_partition", validated, lambda batch: batch.key)
    checked = op.stateful("sequence_check", by_partition, sequence_check(pipeline))
    clean = op.stateful("dedupe", checked, dedupe(pipeline))
    op.inspect("observe", clean, observe)
    if publish_dead_letters is not None:
        # On the path to Iceberg, not beside it: a batch's dead letters are confirmed in the DLQ topic before its
        # rows can be committed, so no seam (from which a restart without recovery state resumes) ever passes a
        # dead letter the topic lacks.
        clean = op.map("publish_dead_letters", clean, partial(_publish_dead_letters, publish=publish_dead_letters))
    if sequence_event_sink is not None:
        events = op.flat_map("sequence_events", clean, lambda keyed: keyed[1].sequence_events)
        op.output("sequence_event_out", events, sequence_event_sink)
    arrow = op.map("to_arrow", clean, lambda keyed: (COMMITTER, to_arrow(keyed[1])))
    op.output("iceberg", arrow, iceberg_sink or IcebergSink.from_settings(settings))
    return flow


def _validate(raw: RawBatch, pipeline: Pipeline) -> IngestBatch:
    with tracing.batch_span("validate", raw) as traced:
        batch = pipeline.validate(raw)
        traced.set("rows", len(batch.records))
        traced.set("dead_letters", len(batch.dead_letters))
    return batch


def default_source(settings: Settings, degradation: DegradationManager | None = None) -> Source[RawBatch]:
    if settings.source == "file":
        return FileSource(settings.input_file, settings.input_kind, batch_size=settings.batch_size)
    if settings.source == "kafka":
        topics = [settings.trades_topic, settings.quotes_topic, settings.dlq_topic]
        ensure_topics(settings.kafka_bootstrap, topics, settings.kafka_partitions)
        return KafkaSource(
            settings.kafka_bootstrap,
            [settings.trades_topic, settings.quotes_topic],
            start_offsets=partial(start_offsets, settings),
            batch_size=settings.batch_size,
            tail=settings.kafka_tail,
            warmup_messages=settings.resume_warmup_messages,
            degradation=degradation,
            # an idle stream's dead letters still commit (k2.model.batch.tick)
            idle_tick_seconds=settings.epoch_seconds,
        )
    return SyntheticSource.from_settings(settings)


def _publish_dead_letters(
    keyed: tuple[str, IngestBatch], publish: Callable[[list[DeadLetter]], None]
) -> tuple[str, IngestBatch]:
    if keyed[1].dead_letters:
        publish(keyed[1].dead_letters)
    return keyed


def default_dead_letter_publisher(settings: Settings) -> Callable[[list[DeadLetter]], None] | None:
    if settings.source == "kafka":
        return DeadLetterPublisher(settings.kafka_bootstrap, settings.dlq_topic)
    return None


def _flow_from_environment() -> Dataflow:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    install_stop_handlers(settings.stop_timeout_seconds)  # SIGTERM / Ctrl-C drain the flow and commit (k2.ops.stopping)
    tracing.configure_tracing(settings)  # off unless K2_OTLP_ENDPOINT or K2_TRACE_FILE (k2.ops.tracing)
    serve_metrics(settings.metrics_port)  # once per process: `-w 2` workers share it
    tune_process()
    degradation = degradation_from_settings(settings)  # one per process, shared by the sources and the sink
    return build_flow(
        default_source(settings, degradation),
        settings,
        iceberg_sink=IcebergSink.from_settings(settings, degradation),
        publish_dead_letters=default_dead_letter_publisher(settings),
    )


def __getattr__(name: str) -> Dataflow:
    if name == "flow":
        built = globals()["flow"] = _flow_from_environment()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
