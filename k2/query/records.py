"""The bookkeeping tables as query results: snapshots of a table, sequence gaps, dead letters."""

from __future__ import annotations

import json
from typing import Any

from k2.query.engine import EVERYTHING, Freshness, QueryEngine, Selection, to_datetime
from k2.query.params import QueryError
from k2.query.ticks import Page, columns, where
from k2.storage.catalog import DEAD_LETTERS, SEQUENCE_GAPS, TABLE_NAMES
from k2.storage.seams import OFFSETS_PROPERTY


def snapshots(engine: QueryEngine, name: str, limit: int = 100) -> list[dict[str, Any]]:
    """The table's snapshots, newest first: id, parent, commit time, operation, rows added and the seam."""
    if name not in TABLE_NAMES:
        raise QueryError(f"unknown table {name!r}; choose from {', '.join(TABLE_NAMES)}")
    table = engine.table(name)
    if table is None:
        return []
    found = []
    for snapshot in sorted(table.snapshots(), key=lambda s: s.timestamp_ms, reverse=True)[:limit]:
        summary = snapshot.summary
        extra = summary.additional_properties if summary else {}
        found.append(
            {
                "snapshot_id": snapshot.snapshot_id,
                "parent_id": snapshot.parent_snapshot_id,
                "committed_at": to_datetime(snapshot.timestamp_ms * 1000),
                "operation": str(summary.operation.value) if summary else None,
                "added_rows": int(extra.get("added-records", 0)),
                "total_rows": int(extra.get("total-records", 0)),
                "offsets": json.loads(extra[OFFSETS_PROPERTY]) if OFFSETS_PROPERTY in extra else None,
            }
        )
    return found


def sequence_gaps(engine: QueryEngine, selection: Selection = EVERYTHING, *, limit: int = 1_000) -> Page:
    """Gap and reset events of the selection (its symbols, exchange and event times), oldest first."""
    scan = engine.scan(SEQUENCE_GAPS, selection)
    params: dict[str, Any] = {"limit": _limit(engine, limit)}
    sql = f'SELECT * FROM {{src}} WHERE {where(scan, params)} ORDER BY "timestamp", exchange, symbol LIMIT $limit'
    return Page(engine.execute(sql, params, {"src": scan}), Freshness.of(scan.plan))


def dead_letters(
    engine: QueryEngine,
    *,
    reason: str | None = None,
    topic: str | None = None,
    start: int | None = None,
    end: int | None = None,
    limit: int = 1_000,
) -> Page:
    """Rejected messages, by source position; `reason` matches a reason or its prefix (`missing_field`)."""
    scan = engine.scan(DEAD_LETTERS, Selection(start=start, end=end))
    params: dict[str, Any] = {"limit": _limit(engine, limit)}
    clause = where(scan, params, time_column="source_timestamp")
    if reason:
        params["reason"] = reason
        clause += " AND (reason = $reason OR starts_with(reason, $reason || ':'))"
    if topic:
        params["topic"] = topic
        clause += " AND source_topic = $topic"
    order = columns(("source_topic", "source_partition", "source_offset"))
    sql = f"SELECT * FROM {{src}} WHERE {clause} ORDER BY {order} LIMIT $limit"
    return Page(engine.execute(sql, params, {"src": scan}), Freshness.of(scan.plan))


def _limit(engine: QueryEngine, limit: int) -> int:
    if not 1 <= limit <= engine.max_rows:
        raise QueryError(f"limit must be between 1 and {engine.max_rows}")
    return limit
