"""Trades and quotes as rows: filtered, field-selected, and paged with cursors pinned to one snapshot.

Pages are ordered by `(timestamp, source_topic, source_partition, source_offset)`: unique per row, so a cursor
names an exact place. The cursor carries the snapshot id, so paging through a range while new data is committed
neither skips nor repeats a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import pyarrow as pa
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.schema import Schema

from k2.ingest.columnar import ARROW_SCHEMAS
from k2.query.engine import EVERYTHING, Freshness, QueryEngine, Scan, Selection, to_datetime
from k2.query.params import Cursor, NotFound, QueryError, check_fields
from k2.storage.catalog import QUOTES, SCHEMAS, TRADES

FIELDS: dict[str, tuple[str, ...]] = {name: tuple(f.name for f in SCHEMAS[name].fields) for name in (TRADES, QUOTES)}
ORDER = ("timestamp", "source_topic", "source_partition", "source_offset")


class Page(msgspec.Struct):
    rows: pa.Table
    freshness: Freshness
    next_cursor: str | None = None


def where(scan: Scan, params: dict[str, Any], time_column: str = "timestamp") -> str:
    """The WHERE clause for a scan's filters, with their values added to `params`."""
    clauses = []
    if scan.symbols:
        names = [f"symbol_{i}" for i in range(len(scan.symbols))]
        params.update(zip(names, scan.symbols, strict=True))
        clauses.append(f"symbol IN ({', '.join('$' + n for n in names)})")
    if scan.exchange:
        params["exchange"] = scan.exchange
        clauses.append("exchange = $exchange")
    if scan.start is not None:
        params["start"] = to_datetime(scan.start)
        clauses.append(f'"{time_column}" >= $start')
    if scan.end is not None:
        params["end"] = to_datetime(scan.end)
        clauses.append(f'"{time_column}" < $end')
    return " AND ".join(clauses) or "TRUE"


def columns(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def ticks_between(
    engine: QueryEngine,
    name: str,
    selection: Selection = EVERYTHING,
    *,
    limit: int = 1_000,
    cursor: str | None = None,
    fields: Sequence[str] | None = None,
) -> Page:
    """Rows of `trades` or `quotes` in `[start, end)`, oldest first, at most `limit` per page; `realtime` adds
    the Kafka tail above the snapshot's seam (each message once, from one side or the other)."""
    if name not in FIELDS:
        raise QueryError(f"{name} is not a tick table")
    if not 1 <= limit <= engine.max_rows:
        raise QueryError(f"limit must be between 1 and {engine.max_rows}")
    after = Cursor.decode(cursor) if cursor else None
    if after is not None and selection.realtime:
        raise QueryError("cursor pages read one committed snapshot; drop freshness=realtime to page")
    if after is not None:  # every page of a walk reads the same snapshot
        selection = msgspec.structs.replace(selection, snapshot_id=after.snapshot_id, as_of=None)
        _check_pinned(engine, name, after)
    scan = engine.scan(name, selection)
    freshness = scan.freshness
    added = added_columns(scan)
    available = [*FIELDS[name], *added.column_names]  # columns added by schema evolution can be asked for too
    selected = check_fields(fields, available) or available
    if scan.plan.snapshot_id is None and scan.tail is None:
        return Page(_empty(name, selected), freshness)
    params: dict[str, Any] = {"limit": limit + 1}
    clause = where(scan, params)
    if after is not None:
        params.update(c_ts=to_datetime(after.timestamp), c_topic=after.topic, c_part=after.partition)
        params["c_off"] = after.offset
        clause += (
            ' AND ("timestamp" > $c_ts OR ("timestamp" = $c_ts AND (source_topic > $c_topic OR (source_topic ='
            " $c_topic AND (source_partition > $c_part OR (source_partition = $c_part AND source_offset > $c_off))))))"
        )
    wanted = selected + [column for column in ORDER if column not in selected]
    source = "{src}"
    if added.num_columns:  # files written before the columns were added lack them: an empty table adds them (nulls)
        source = "(SELECT * FROM {src} UNION ALL BY NAME SELECT * FROM {added})"
    sql = f"SELECT {columns(wanted)} FROM {source} WHERE {clause} ORDER BY {columns(ORDER)} LIMIT $limit"
    rows = engine.execute(sql, params, {"src": scan}, arrows={"added": added} if added.num_columns else None)
    next_cursor = None
    more = rows.num_rows > limit
    if more:
        rows = rows.slice(0, limit)
    if more and not selection.realtime:  # a realtime page is not pinned to anything a cursor could name
        last = {column: rows.column(column)[limit - 1] for column in ORDER}
        next_cursor = Cursor(
            snapshot_id=scan.plan.snapshot_id,
            timestamp=last["timestamp"].value,
            topic=last["source_topic"].as_py(),
            partition=last["source_partition"].as_py(),
            offset=last["source_offset"].as_py(),
        ).encode()
    return Page(rows.select(selected), freshness, next_cursor)


def _check_pinned(engine: QueryEngine, name: str, after: Cursor) -> None:
    """The cursor's snapshot still exists (its plan is kept for the scan), or its page is gone: a NotFound."""
    try:
        engine.plan(name, snapshot_id=after.snapshot_id)
    except NotFound as exc:
        raise NotFound(f"this cursor points to no page: {exc}") from None


def added_columns(scan: Scan) -> pa.Table:
    """An empty table of the columns the table's schema has gained since K2 created it (schema evolution), in
    the schema's order; no columns when it has gained none."""
    if scan.table is None:
        return pa.table({})
    schema = scan.table.schema()
    known = set(FIELDS[scan.name])
    extra = [field for field in schema.fields if field.name not in known]
    if not extra:
        return pa.table({})
    return schema_to_pyarrow(Schema(*extra), include_field_ids=False).empty_table()


def _empty(name: str, selected: list[str]) -> pa.Table:
    return ARROW_SCHEMAS[name].empty_table().select(selected)
