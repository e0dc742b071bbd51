"""Spans per batch (k2.ops.tracing): the real flow's steps, the trace file, OTLP/HTTP, no tracing (the Kafka reader's
spans: tests/integration/test_kafka_reader.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from k2.model.batch import RawBatch, tick
from k2.ops import tracing
from k2.ops.config import ConfigError, load_settings
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import quote, raw_batch, trade
from tests.fixtures.traces import explain, from_sdk, path_of, read_spans

ROOT = Path(__file__).resolve().parents[2]
FLOW_STEPS = ("validate", "sequence", "dedupe", "observe")


@pytest.fixture
def memory(settings):
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing(settings, exporter=exporter)
    yield exporter
    tracing.shutdown_tracing()


def _position(span) -> tuple:
    return tuple(span.get(k) for k in ("topic", "partition", "first_offset", "next_offset", "messages"))


def test_the_flow_traces_every_batch_once_per_step_with_its_offset_range(settings, memory):
    first = [
        trade(trade_id="a", source_sequence=1),
        trade(trade_id="b", source_sequence=2),
        b"{oops",
        trade(trade_id="b", source_sequence=2),  # duplicate
        trade(trade_id="c", source_sequence=5),  # gap 3..4
    ]
    second = [trade(trade_id=t, source_sequence=s) for t, s in (("d", 6), ("e", 7), ("f", 8))]
    quotes = [quote(quote_id="q1", source_sequence=1), quote(quote_id="q2", source_sequence=2)]
    batches = [
        raw_batch(first, "market.trades", 0),
        raw_batch(quotes, "market.quotes", 1, start=40),
        tick("market.trades", 0),  # no message: no span
        raw_batch(second, "market.trades", 0, start=5),
    ]
    run_ingest(settings, batches)

    spans = [s for s in from_sdk(memory.get_finished_spans()) if s.name in FLOW_STEPS]
    expected = {("market.trades", 0, 0, 5, 5), ("market.quotes", 1, 40, 42, 2), ("market.trades", 0, 5, 8, 3)}
    for step in FLOW_STEPS:
        seen = Counter(_position(s) for s in spans if s.name == step)
        assert seen == dict.fromkeys(expected, 1), step
    by = {(s.name, s.get("first_offset"), s.get("topic")): s for s in spans}
    assert by["validate", 0, "market.trades"].get("dead_letters") == 1
    assert by["validate", 0, "market.trades"].get("rows") == 4
    assert by["sequence", 0, "market.trades"].get("gaps") == 1
    assert by["sequence", 0, "market.trades"].get("missing") == 2
    assert by["sequence", 5, "market.trades"].get("gaps") == 0
    assert by["dedupe", 0, "market.trades"].get("duplicates") == 1
    assert by["dedupe", 0, "market.trades"].get("rows") == 3
    assert by["observe", 40, "market.quotes"].get("rows") == 2
    # one batch goes through the steps in order
    starts = [by[step, 5, "market.trades"].start_ns for step in FLOW_STEPS]
    assert starts == sorted(starts)


def test_the_off_path_imports_no_opentelemetry():
    code = """
import sys, tempfile
from k2.ops import tracing
from k2.ops.config import load_settings
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import raw_batch, trade
import flows.ingest, k2.flow.kafka_source, k2.flow.steps
with tempfile.TemporaryDirectory() as tmp:
    settings = load_settings({}, data_dir=tmp, epoch_seconds=0.05)
    assert not tracing.configure_tracing(settings)
    with tracing.span("commit", table="trades") as traced:
        traced.set("snapshot_id", 1)
    assert not traced
    run_ingest(settings, [raw_batch([trade()])])
print(sorted(m for m in sys.modules if m.partition(".")[0] == "opentelemetry"))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("K2_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_trace_file_has_every_finished_span_even_after_kill_9(tmp_path):
    trace_file = tmp_path / "spans.jsonl"
    code = f"""
import os, signal
from k2.ops import tracing
from k2.model.batch import RawBatch
from k2.ops.config import load_settings
assert tracing.configure_tracing(load_settings({{}}, data_dir={str(tmp_path)!r}, trace_file={str(trace_file)!r}))
with tracing.batch_span("read", RawBatch("market.trades", 2, [7, 8, 9], [b"", b"", b""])):
    pass
try:
    with tracing.span("commit", table="trades") as traced:
        traced.set("offsets", {{"market.trades/2": 10}})
        raise OSError("store down")
except OSError:
    pass
with tracing.span("commit", table="trades") as traced:
    traced.set("offsets", {{"market.trades/2": 10}})
    traced.set("snapshot_id", 123)
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr

    read, failed, committed = read_spans(trace_file)
    assert (read.name, read.get("first_offset"), read.get("next_offset"), read.get("messages")) == ("read", 7, 10, 3)
    assert read.status == "UNSET"
    assert failed.failed
    assert "store down" in (failed.error or "")
    assert committed.seam() == {"market.trades/2": 10}
    assert committed.get("snapshot_id") == 123
    assert {s.pid for s in (read, failed, committed)} == {committed.pid} != {os.getpid()}


def test_path_of_a_message_from_read_to_the_commit_that_holds_it(settings, tmp_path):
    trace_file = tmp_path / "spans.jsonl"
    assert tracing.configure_tracing(load_settings({}, data_dir=settings.data_dir, trace_file=str(trace_file)))
    try:
        for start, size in ((0, 5), (5, 3)):
            batch = RawBatch("market.trades", 0, list(range(start, start + size)), [b""] * size)
            for step in ("read", "validate", "sequence", "dedupe", "buffer"):
                with tracing.batch_span(step, batch, rows=size):
                    pass
        other = RawBatch("market.trades", 1, [5, 6, 7], [b""] * 3)  # another partition, same offsets
        with tracing.batch_span("read", other):
            pass
        commits = [
            ("trades", {"market.trades/0": 5, "market.trades/1": 8}, 11, False),
            ("trades", {"market.trades/0": 8, "market.trades/1": 8}, None, True),  # failed: retried
            ("trades", {"market.trades/0": 8, "market.trades/1": 8}, 12, False),
            ("dead_letters", {"market.trades/0": 8}, 21, False),
            ("trades", {"market.trades/0": 9, "market.trades/1": 8}, 13, False),  # later data: not this message's
        ]
        for table, seam, snapshot_id, fails in commits:
            try:
                with tracing.span("commit", table=table, offsets=seam) as traced:
                    if fails:
                        raise TimeoutError("catalog timed out")
                    traced.set("snapshot_id", snapshot_id)
            except TimeoutError:
                pass
    finally:
        tracing.shutdown_tracing()

    spans = read_spans(trace_file)
    path = path_of(spans, "market.trades", 0, 6)
    assert [line.split()[3] for line in path] == [
        *("read", "validate", "sequence", "dedupe", "buffer"),
        *("commit", "commit", "commit"),
    ]
    assert all("[5, 8)" in line for line in path[:5])
    assert "FAILED: TimeoutError: catalog timed out" in path[5]
    assert "snapshot_id=12" in path[6]
    assert "table=trades" in path[6]
    assert "seam 8" in path[6]
    assert "snapshot_id=21" in path[7]
    assert "table=dead_letters" in path[7]
    assert not any("snapshot_id=11" in line or "snapshot_id=13" in line for line in path)
    earlier = [line for line in path_of(spans, "market.trades", 0, 2) if " commit " in line]
    assert ["snapshot_id=11" in earlier[0], "snapshot_id=21" in earlier[1], len(earlier)] == [True, True, 2]
    assert path_of(spans, "market.trades", 0, 9) == []
    assert explain(spans, "market.trades", 0, 9) == "path of market.trades/0 offset 9: no span covers it"
    assert explain(spans, "market.trades", 0, 6).startswith("path of market.trades/0 offset 6 (8 spans):\n  ")


def test_span_attributes_and_the_off_object(settings, memory):
    with tracing.span("commit", table="trades", missing=None, offsets={"b/0": 2, "a/1": 1}) as traced:
        traced.set("snapshot_id", 5)
        traced.set("otel.custom", "kept as named")
        traced.set("nothing", None)
    assert traced
    with tracing.batch_span("buffer", tick("market.trades", 0)) as skipped:  # a tick: no span
        skipped.set("rows", 1)
    assert not skipped
    (span,) = from_sdk(memory.get_finished_spans())
    assert span.attributes == {
        "k2.table": "trades",
        "k2.offsets": '{"a/1": 1, "b/0": 2}',
        "k2.snapshot_id": 5,
        "otel.custom": "kept as named",
    }
    tracing.shutdown_tracing()
    assert not tracing.enabled()
    assert not tracing.span("commit")
    assert not tracing.configure_tracing(settings)


def test_a_malformed_otlp_endpoint_is_a_config_error():
    with pytest.raises(ConfigError, match="K2_OTLP_ENDPOINT"):
        load_settings({"K2_OTLP_ENDPOINT": "collector:4318"})


class _Collector(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("configured_by", ["K2_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"])
def test_spans_reach_an_otlp_http_collector(settings, monkeypatch, configured_by):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    server.received = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    trace_file = Path(settings.data_dir) / "spans.jsonl"  # the file as well: both get every span
    if configured_by == "K2_OTLP_ENDPOINT":
        settings = load_settings({}, data_dir=settings.data_dir, otlp_endpoint=url + "/", trace_file=str(trace_file))
    else:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        settings = load_settings({}, data_dir=settings.data_dir, trace_file=str(trace_file))
    try:
        assert tracing.configure_tracing(settings)
        for start in (0, 10, 20):
            with tracing.batch_span("read", RawBatch("market.trades", 0, list(range(start, start + 10)), [b""] * 10)):
                pass
        tracing.shutdown_tracing()  # exports what the batch processor holds
    finally:
        server.shutdown()
        server.server_close()

    assert server.received  # type: ignore[attr-defined]
    names, services = [], set()
    for path, content_type, body in server.received:  # type: ignore[attr-defined]
        assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            services |= {a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"}
            names += [s.name for scope in resource_spans.scope_spans for s in scope.spans]
    assert names == ["read"] * 3
    assert services == {"k2-ingest"}
    assert [s.get("first_offset") for s in read_spans(trace_file)] == [0, 10, 20]
