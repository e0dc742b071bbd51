"""Content negotiation: JSON (decimals as strings), CSV, Parquet or an Arrow IPC stream, by `format=` or `Accept`.

Non-JSON responses carry the result's freshness in `X-K2-*` headers instead of a `meta` object.
"""

from __future__ import annotations

import io
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from litestar import Request, Response

from api.types import Meta
from k2.query import QueryError

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
_ALIASES = {"application/x-parquet": "parquet", "application/octet-stream": "arrow"}
_BY_MEDIA = {media: name for name, media in MEDIA_TYPES.items()} | _ALIASES


def negotiate(request: Request, format: str | None) -> str:
    if format:
        if format not in MEDIA_TYPES:
            raise QueryError(f"format {format!r}: choose from {', '.join(MEDIA_TYPES)}")
        return format
    best = request.accept.best_match(list(_BY_MEDIA), default="application/json")
    return _BY_MEDIA.get(best or "application/json", "json")


def python_rows(rows: pa.Table) -> list[dict[str, Any]]:
    """Rows as Python values; Arrow maps (lists of pairs) become dicts, also inside structs."""
    data = rows.to_pylist()
    fixers = {f.name: _fixer(f.type) for f in rows.schema if _has_map(f.type)}
    for row in data:
        for name, fix in fixers.items():
            row[name] = fix(row[name])
    return data


def _has_map(kind: pa.DataType) -> bool:
    if pa.types.is_map(kind):
        return True
    if pa.types.is_struct(kind):
        return any(_has_map(kind.field(i).type) for i in range(kind.num_fields))
    return False


def _fixer(kind: pa.DataType):
    if pa.types.is_map(kind):
        return lambda value: None if value is None else dict(value)
    fields = {
        kind.field(i).name: _fixer(kind.field(i).type) for i in range(kind.num_fields) if _has_map(kind.field(i).type)
    }

    def fix_struct(value):
        if value is not None:
            for name, fix in fields.items():
                value[name] = fix(value[name])
        return value

    return fix_struct


def meta_headers(meta: Meta | None) -> dict[str, str]:
    if meta is None:
        return {}
    headers = {"X-K2-Table": meta.table, "X-K2-Count": str(meta.count)}
    if meta.snapshot_id is not None:
        headers["X-K2-Snapshot-Id"] = str(meta.snapshot_id)
    if meta.committed_at is not None:
        headers["X-K2-Committed-At"] = meta.committed_at.isoformat()
    if meta.max_event_time is not None:
        headers["X-K2-Max-Event-Time"] = meta.max_event_time.isoformat()
    if meta.next_cursor:
        headers["X-K2-Next-Cursor"] = meta.next_cursor
    if meta.truncated:
        headers["X-K2-Truncated"] = "true"
    if meta.offsets:
        headers["X-K2-Offsets"] = msgspec.json.encode(meta.offsets).decode()
    return headers


def respond(fmt: str, rows: pa.Table, page: msgspec.Struct | None = None, meta: Meta | None = None) -> Response:
    """`page` (a ready JSON body) for JSON; the Arrow rows themselves for the other formats."""
    headers = meta_headers(meta)
    if fmt == "json":
        return Response(content=page, headers=headers, media_type=MEDIA_TYPES["json"])
    return Response(content=encode_table(fmt, rows), headers=headers, media_type=MEDIA_TYPES[fmt])


def encode_table(fmt: str, rows: pa.Table) -> bytes:
    sink = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(rows, sink)
    elif fmt == "arrow":
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
    else:
        pacsv.write_csv(_flat(rows), sink)
    return sink.getvalue()


def _flat(rows: pa.Table) -> pa.Table:
    """CSV has no nested values: lists, maps and structs become JSON text; bytes become base64 (via JSON)."""
    for i, field in enumerate(rows.schema):
        kind = field.type
        if pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            values = python_rows(rows.select([field.name]))
            text = [None if v[field.name] is None else msgspec.json.encode(v[field.name]).decode() for v in values]
            rows = rows.set_column(i, field.name, pa.array(text, pa.string()))
    return rows
