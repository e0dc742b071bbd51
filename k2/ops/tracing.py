"""Traces to debug with: one OpenTelemetry span per batch and step, never per message.

Off unless configured, and then free: `span` returns a shared do-nothing object, and no `opentelemetry` module is
imported (every import of it is inside `configure_tracing`). The flow process calls `configure_tracing(settings)`
once at its start (`flows.ingest`); it turns tracing on when either is set:

- `K2_OTLP_ENDPOINT` (or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): spans go
  to an OTLP/HTTP collector (protobuf, batched in a background thread), service.name `k2-ingest`. Like the
  standard variable, `K2_OTLP_ENDPOINT` is the collector's base URL (`http://host:4318`); `/v1/traces` is added.
- `K2_TRACE_FILE`: every finished span is appended at once as one JSON line (`span_record`) with one write(2), so
  the spans of a process killed with `kill -9` are in the file up to its last finished span. Several processes
  and workers may share the file. `tests/fixtures/traces.py` reads it back and tells a message's path. With the
  file alone, spans are written without the SDK (the same lines, a fraction of the cost: benchmarks/report.md,
  "Design measurements: Trace spans").

Using it (the flow's steps; `k2.storage.writer` adds `buffer`, `commit` and `recovery`):

    with tracing.span("commit", table=name) as traced:        # keyword attributes are named `k2.<keyword>`
        snapshot_id = ...
        traced.set("snapshot_id", snapshot_id)                # set after the fact; a no-op when tracing is off
        traced.set("offsets", seam)                           # a dict or other non-scalar is stored as JSON

    with tracing.batch_span("buffer", batch, rows=n):         # `k2.topic`, `k2.partition`, `k2.first_offset`,
        ...                                                   # `k2.next_offset` and `k2.messages` from the batch

- `span(name, *, start_ns=None, **attributes)`: a context manager yielding a `Span`; `start_ns` (`time.time_ns()`)
  backdates its start. An exception leaving it marks the span as an error and passes on. Spans are not made
  current: one started inside another is a root too.
- `batch_span(name, batch, **attributes)`: the same with the batch's position; a tick (no message) gets no span. A
  batch is anything with `topic`, `partition`, `next_offset` and its messages' ascending offsets in
  `source_offsets` (IngestBatch, ArrowBatch) or `offsets` (RawBatch): the span covers [first_offset, next_offset).
- `Span.set(key, value)` (`k2.<key>` unless `key` has a dot; None is skipped), `Span.set_batch(batch)`, and
  `bool(span)`: False when tracing is off, to skip working out an attribute that costs something.

Spans are roots (a batch's steps run one after another; they are tied together by position, not by parent). A span
covers a message when it names the message's partition and its [k2.first_offset, k2.next_offset) holds the
offset, or, for a span carrying a seam in `k2.offsets` (`{"<topic>/<partition>": next offset}`, as a commit
does, with `k2.table` and `k2.snapshot_id`), when it is the first successful span of its name and table whose
seam has passed the offset.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from k2.ops.config import Settings

SERVICE_NAME = "k2-ingest"
PREFIX = "k2."

_open: Callable[[str, dict[str, object], int | None], Span] | None = None  # while tracing is on: starts a span
_provider: Any = None  # the SDK's TracerProvider, when the SDK is used
_file: JsonLinesExporter | None = None  # the trace file, when it is written without the SDK


class Span:
    """What `span` yields while tracing is off: does nothing, and is False."""

    __slots__ = ()

    def __enter__(self) -> Span:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __bool__(self) -> bool:
        return False

    def set(self, key: str, value: object) -> None:
        return None

    def set_batch(self, batch: Any) -> None:
        return None


_OFF = Span()


class _Recording(Span):
    """A live SDK span around the block; an exception leaving it is recorded and sets the status to ERROR.

    Started with `start_span`, not made the current span: cheaper (no context to attach and detach; figures in
    benchmarks/report.md, "Design measurements: Trace spans"), and the flow's spans are roots anyway.
    """

    __slots__ = ("_span",)

    def __init__(self, started: Any):
        self._span = started

    def __enter__(self) -> Span:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.record_exception(error)
            self._span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        self._span.end()

    def __bool__(self) -> bool:
        return True

    def set(self, key: str, value: object) -> None:
        if value is not None:
            self._span.set_attribute(key if "." in key else PREFIX + key, _attribute(value))

    def set_batch(self, batch: Any) -> None:
        self._span.set_attributes({PREFIX + k: v for k, v in _position(batch).items()})


class _Line(Span):
    """A span written straight to the trace file as it ends, without the SDK: the line `span_record` makes."""

    __slots__ = ("_attributes", "_file", "_name", "_start")

    def __init__(self, file: JsonLinesExporter, name: str, attributes: dict[str, object], start_ns: int | None):
        self._file, self._name, self._attributes = file, name, attributes
        self._start = time.time_ns() if start_ns is None else start_ns

    def __enter__(self) -> Span:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        self._file.write(
            {
                "name": self._name,
                "trace_id": os.urandom(16).hex(),
                "span_id": os.urandom(8).hex(),
                "parent_id": None,
                "start_ns": self._start,
                "end_ns": time.time_ns(),
                "status": "UNSET" if error is None else "ERROR",
                "error": None if error is None else f"{type(error).__name__}: {error}",
                "pid": os.getpid(),
                "attributes": self._attributes,
            }
        )

    def __bool__(self) -> bool:
        return True

    def set(self, key: str, value: object) -> None:
        if value is not None:
            self._attributes[key if "." in key else PREFIX + key] = _attribute(value)

    def set_batch(self, batch: Any) -> None:
        self._attributes.update({PREFIX + k: v for k, v in _position(batch).items()})


def enabled() -> bool:
    return _open is not None


def span(name: str, *, start_ns: int | None = None, **attributes: object) -> Span:
    """A span around the block (it starts at this call), attributes named `k2.<keyword>`; the shared no-op `Span`
    while tracing is off."""
    if _open is None:
        return _OFF
    return _open(name, {PREFIX + k: _attribute(v) for k, v in attributes.items() if v is not None}, start_ns)


def batch_span(name: str, batch: Any, **attributes: object) -> Span:
    """A span for one batch of one source partition, with its position; none for a tick or while tracing is off."""
    if _open is None or not _offsets_of(batch):
        return _OFF
    return span(name, **_position(batch), **attributes)


def _offsets_of(batch: Any) -> Sequence[int]:
    offsets = getattr(batch, "source_offsets", None)
    return batch.offsets if offsets is None else offsets


def _position(batch: Any) -> dict[str, object]:
    offsets = _offsets_of(batch)
    return {
        "topic": batch.topic,
        "partition": batch.partition,
        "first_offset": offsets[0],
        "next_offset": batch.next_offset,
        "messages": len(offsets),
    }


def _attribute(value: object) -> object:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str | bool | int | float) for v in value):
        return value
    import json

    return json.dumps(value, sort_keys=True, default=str)


def configure_tracing(settings: Settings, *, exporter: Any = None) -> bool:
    """Turn tracing on as configured (see the module docstring), replacing any earlier configuration; True if on.

    `exporter`: an extra SDK `SpanExporter` fed synchronously (tests: the SDK's `InMemorySpanExporter`). The
    provider stays private to K2 (not the global one), so configuring again is allowed.
    """
    global _open, _provider, _file
    shutdown_tracing()
    otlp = bool(
        settings.otlp_endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    if not (otlp or exporter is not None):
        if not settings.trace_file:
            return False
        _file = JsonLinesExporter(settings.trace_file)
        _open = partial(_Line, _file)
        return True
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME, "process.pid": os.getpid()}))
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # None: the exporter reads the standard variables itself (a traces endpoint is used as is)
        url = settings.otlp_endpoint.rstrip("/") + "/v1/traces" if settings.otlp_endpoint else None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    if settings.trace_file:
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(settings.trace_file)))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("k2")

    def start(name: str, attributes: dict[str, object], start_ns: int | None) -> Span:
        return _Recording(tracer.start_span(name, attributes=attributes, start_time=start_ns))

    _provider, _open = provider, start
    return True


def shutdown_tracing() -> None:
    """Export what is pending and turn tracing off (also done at interpreter exit by the SDK)."""
    global _open, _provider, _file
    provider, file = _provider, _file
    _open = _provider = _file = None
    if provider is not None:
        provider.shutdown()
    if file is not None:
        file.shutdown()


def span_record(finished: Any) -> dict[str, object]:
    """A finished SDK span as the plain dict a trace file line holds."""
    context, parent, status = finished.context, finished.parent, finished.status
    return {
        "name": finished.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "start_ns": finished.start_time,
        "end_ns": finished.end_time,
        "status": status.status_code.name,  # UNSET, OK or ERROR
        "error": status.description,
        "pid": os.getpid(),
        "attributes": dict(finished.attributes or {}),
    }


_encode = msgspec.json.Encoder().encode


class JsonLinesExporter:
    """An SDK span exporter appending one JSON line per span to a file, each export in one write(2) (O_APPEND)."""

    def __init__(self, path: str | os.PathLike[str]):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def export(self, spans: Iterable[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        written = self.write(*(span_record(s) for s in spans))
        return SpanExportResult.SUCCESS if written else SpanExportResult.FAILURE

    def write(self, *records: dict[str, object]) -> bool:
        """Append span records (`span_record`'s dicts) as lines; False once shut down."""
        data = memoryview(b"".join(_encode(record) + b"\n" for record in records))
        with self._lock:
            if self._fd < 0:
                return False
            while data:
                data = data[os.write(self._fd, data) :]
        return True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing is held back

    def shutdown(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
