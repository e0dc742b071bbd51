"""K2 ingestion: read -> validate -> sequence_check -> dedupe -> to_arrow -> iceberg (+ the DLQ topic).

Run: `python -m bytewax.run flows.ingest` (settings from `K2_*` environment variables). Wiring only: every step is
a function from `k2/` (the steps from `k2.ingest.pipeline`, their Bytewax wrappers from `k2.flow`). Every item is
a batch of one source partition; steps keyed by partition keep per-instrument state together. `flow` is built on
first access (what bytewax.run does), so importing `build_flow` starts no metrics server and leaves logging alone.
"""

from __future__ import annotations

import gc
from concurrent.futures import Future, ThreadPoolExecutor

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from pyiceberg.table import Table

from k2.flow import steps
from k2.flow.iceberg_sink import COMMITTER, DeadLetterTopic, IcebergSink
from k2.flow.sources import source_from_settings
from k2.ingest.columnar import to_arrow
from k2.ingest.pipeline import Pipeline
from k2.kafka.producer import dead_letter_publisher
from k2.model.batch import RawBatch
from k2.ops import tracing
from k2.ops.config import Settings, load_settings
from k2.ops.degrade import degradation_from_settings
from k2.ops.logs import configure_logging
from k2.ops.metrics import serve_metrics
from k2.ops.stopping import install_stop_handlers
from k2.storage.catalog import open_tables
from k2.storage.commit import import_append


def build_flow(
    source: Source[RawBatch],
    settings: Settings,
    *,
    iceberg_sink: Sink | None = None,
    dead_letter_topic: DeadLetterTopic | None = None,
    sequence_event_sink: Sink | None = None,
) -> Dataflow:
    """The flow's graph. Without `iceberg_sink`, the sink on `settings`' warehouse, which sends dead letters to
    `dead_letter_topic` (the DLQ) and confirms them before it commits (`k2.flow.iceberg_sink`)."""
    if iceberg_sink is not None and dead_letter_topic is not None:
        raise ValueError("give the DLQ topic to the Iceberg sink: it confirms dead letters before committing")
    pipeline = Pipeline(settings)  # the steps' rules and state bounds
    flow = Dataflow("k2_ingest")
    raw = op.input("read", flow, source)
    validated = op.map("validate", raw, steps.validate(pipeline))
    by_partition = op.key_on("by_partition", validated, lambda batch: batch.key)
    checked = op.stateful("sequence_check", by_partition, steps.sequence_check(pipeline))
    clean = op.stateful("dedupe", checked, steps.dedupe(pipeline))
    op.inspect("observe", clean, steps.observe)
    if sequence_event_sink is not None:
        events = op.flat_map("sequence_events", clean, lambda keyed: keyed[1].sequence_events)
        op.output("sequence_event_out", events, sequence_event_sink)
    arrow = op.map("to_arrow", clean, lambda keyed: (COMMITTER, to_arrow(keyed[1])))
    op.output("iceberg", arrow, iceberg_sink or IcebergSink.from_settings(settings, dead_letters=dead_letter_topic))
    return flow


def _flow_from_environment() -> Dataflow:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    install_stop_handlers(settings.stop_timeout_seconds)  # SIGTERM / Ctrl-C drain the flow and commit
    tracing.configure_tracing(settings)  # off unless K2_OTLP_ENDPOINT or K2_TRACE_FILE
    serve_metrics(settings.metrics_port)  # once per process: `-w 2` workers share it
    steps.tune_process()
    degradation = degradation_from_settings(settings)  # one per process, shared by the sources and the sink
    tables = _open_tables_in_background(settings)
    return build_flow(
        source_from_settings(settings, degradation, tables=tables.result),
        settings,
        iceberg_sink=IcebergSink.from_settings(
            settings, degradation, tables=tables.result, dead_letters=dead_letter_publisher(settings)
        ),
    )


def _open_tables_in_background(settings: Settings) -> Future[dict[str, Table]]:
    """The warehouse's tables, opened once for the source (its resume positions) and the sink (the writer).

    On a thread of its own: opening the catalog is mostly Python (importing its SQL layer), while the Kafka set-up
    that runs meanwhile (topics, partitions, the readers' first fetches) mostly waits on the broker, so the flow
    reaches its first commit sooner (benchmarks/report.md, "Design measurements: Flow start-up").
    """
    opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="k2-open-tables")
    tables = opener.submit(open_tables, settings)
    opener.submit(import_append)  # then what the first commit would import, while the flow waits on Kafka
    opener.shutdown(wait=False)  # the thread ends once both are done
    return tables


def __getattr__(name: str) -> Dataflow:
    if name == "flow":
        built = globals()["flow"] = _flow_from_environment()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The collector was off while the flow's modules imported (see `flows`). What they created lives as long as the
# process: frozen, no collection walks it again (as `steps.tune_process` freezes what the flow holds at its start).
gc.freeze()
gc.enable()
