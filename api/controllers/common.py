"""The engine and indexes handlers are given, and turning engine results into API types."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response
from litestar.di import NamedDependency

from api.formats import python_rows, respond
from api.types import Meta, Tail
from k2.query import Freshness, LatestIndex, Page, QueryEngine

Engine = NamedDependency[QueryEngine]
Indexes = NamedDependency[dict[str, LatestIndex]]


def meta(freshness: Freshness, count: int, next_cursor: str | None = None, truncated: bool = False) -> Meta:
    return Meta(
        table=freshness.table,
        snapshot_id=freshness.snapshot_id,
        committed_at=freshness.committed_at,
        max_event_time=freshness.max_event_time,
        count=count,
        offsets=freshness.offsets,
        next_cursor=next_cursor,
        tail=None if freshness.tail is None else msgspec.convert(freshness.tail, Tail, from_attributes=True),
        truncated=truncated,
    )


def _with_extra(rows: list[dict[str, Any]], row_type: type) -> list[dict[str, Any]]:
    """Columns `row_type` does not declare (added to the table later) move under the row's `extra`."""
    known = set(getattr(row_type, "__struct_fields__", ()))
    if not rows or "extra" not in known or known.issuperset(rows[0]):
        return rows
    for row in rows:
        row["extra"] = {name: row.pop(name) for name in [n for n in row if n not in known]}
    return rows


def page_response(
    fmt: str, page: Page, page_type: type, row_type: type, *, limit: int | None = None, **fields: object
) -> Response:
    """A query page in the negotiated format: JSON as `page_type(data=[row_type, ...], meta=..., **fields)`,
    any other format as the Arrow rows themselves with the freshness in `X-K2-*` headers. `limit`: the most rows
    the query returns without a cursor; an answer that reaches it says `truncated`."""
    truncated = limit is not None and page.next_cursor is None and page.rows.num_rows >= limit
    info = meta(page.freshness, page.rows.num_rows, page.next_cursor, truncated)
    body = None
    if fmt == "json":
        body = page_type(
            data=msgspec.convert(_with_extra(python_rows(page.rows), row_type), list[row_type]), meta=info, **fields
        )
    return respond(fmt, page.rows, body, info)
