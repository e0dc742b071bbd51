"""Parameters every data route shares, and turning engine results into API types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Response
from litestar.di import NamedDependency
from litestar.params import Parameter

from api.formats import python_rows, respond
from api.types import Meta, Tail
from k2.query import Freshness, LatestIndex, Page, QueryEngine, parse_time

Engine = NamedDependency[QueryEngine]
Indexes = NamedDependency[dict[str, LatestIndex]]

Symbols = Annotated[
    str | None, Parameter(description="one symbol or a comma-separated list (e.g. `MWR,DVN`)", max_length=4_000)
]
Exchange = Annotated[str | None, Parameter(description="exchange code, e.g. `ASX`", max_length=64)]
Start = Annotated[
    str | None,
    Parameter(description="inclusive start: ISO-8601 (`2014-03-10T23:00:00Z`; no offset means UTC) or µs since epoch"),
]
End = Annotated[str | None, Parameter(description="exclusive end, same forms as `start`")]
Limit = Annotated[int, Parameter(ge=1, le=100_000, description="rows per page")]
SnapshotId = Annotated[int | None, Parameter(description="read this Iceberg snapshot (time travel)")]
AsOf = Annotated[str | None, Parameter(description="read the newest snapshot committed at or before this time")]
Fresh = Annotated[
    Literal["committed", "realtime"],
    Parameter(description="realtime: also the messages still in Kafka beyond the snapshot's seam, each exactly once"),
]
Format = Annotated[str | None, Parameter(description="json (default), csv, parquet or arrow; or send an Accept header")]


def meta(freshness: Freshness, count: int, next_cursor: str | None = None) -> Meta:
    return Meta(
        table=freshness.table,
        snapshot_id=freshness.snapshot_id,
        committed_at=freshness.committed_at,
        max_event_time=freshness.max_event_time,
        count=count,
        offsets=freshness.offsets,
        next_cursor=next_cursor,
        tail=None if freshness.tail is None else msgspec.convert(freshness.tail, Tail, from_attributes=True),
    )


def as_of_time(text: str | None) -> int | None:
    return parse_time(text, "as_of")


def _with_extra(rows: list[dict[str, Any]], row_type: type) -> list[dict[str, Any]]:
    """Columns `row_type` does not declare (added to the table later) move under the row's `extra`."""
    known = set(getattr(row_type, "__struct_fields__", ()))
    if not rows or "extra" not in known or known.issuperset(rows[0]):
        return rows
    for row in rows:
        row["extra"] = {name: row.pop(name) for name in [n for n in row if n not in known]}
    return rows


def page_response(fmt: str, page: Page, page_type: type, row_type: type, **fields: object) -> Response:
    """A query page in the negotiated format: JSON as `page_type(data=[row_type, ...], meta=..., **fields)`,
    any other format as the Arrow rows themselves with the freshness in `X-K2-*` headers."""
    info = meta(page.freshness, page.rows.num_rows, page.next_cursor)
    body = None
    if fmt == "json":
        body = page_type(
            data=msgspec.convert(_with_extra(python_rows(page.rows), row_type), list[row_type]), meta=info, **fields
        )
    return respond(fmt, page.rows, body, info)
