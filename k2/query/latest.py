"""The newest trade and quote per instrument, kept up to date per snapshot without rescanning history.

Scanning a whole table for "latest per symbol" is slow on a large table (benchmarks/report.md,
"Design measurements: Latest index"). So the index keeps, per `(exchange, symbol)`, the newest row, the first
event time and the row count for one snapshot, and when a newer snapshot only added files (every append) it folds
in just those files. A snapshot that removed files (compaction, overwrite, expiry) or carries delete files is
computed afresh. "Newest" is the greatest `(timestamp, source_sequence, source position)`, so ties in one
microsecond resolve by sequence.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from k2.query.engine import Freshness, QueryEngine, Scan, Selection
from k2.query.plan import TablePlan
from k2.storage.catalog import QUOTES, TRADES

_KEY = "(r.timestamp, coalesce(r.source_sequence, -1), r.source_topic, r.source_partition, r.source_offset)"
_FOLD = (
    "SELECT exchange, symbol, arg_max(latest, (latest.timestamp, coalesce(latest.source_sequence, -1),"
    " latest.source_topic, latest.source_partition, latest.source_offset)) AS latest,"
    " min(first_time) AS first_time, sum(rows)::BIGINT AS rows FROM {parts} GROUP BY exchange, symbol"
)

_FOLD_ROWS = (
    f"SELECT exchange, symbol, arg_max(r, {_KEY}) AS latest, min(r.timestamp) AS first_time,"
    " count(*)::BIGINT AS rows FROM {src} AS r GROUP BY exchange, symbol"
)


def _merge(engine: QueryEngine, state: pa.Table, partial: pa.Table) -> pa.Table:
    both = "(SELECT * FROM {old} UNION ALL SELECT * FROM {new})"
    return engine.execute(_FOLD.format(parts=both), {}, {}, arrows={"old": state, "new": partial})


class LatestIndex:
    """Per instrument of one table: the newest row (a struct), first event time and row count."""

    def __init__(self, name: str, pinned: int = 4):
        self.name = name
        self._current: tuple[TablePlan, pa.Table] | None = None
        self._pinned: OrderedDict[int, pa.Table] = OrderedDict()
        self._max_pinned = pinned
        self._lock = threading.Lock()
        # One build at a time: requests that arrive while the index is being built (a service start, a new
        # snapshot) wait for that build and take its result, instead of each scanning the table again.
        self._build_lock = threading.Lock()
        self._empty: tuple[object, pa.Table] | None = None  # the (typed, empty) state of a table with no snapshot

    def state(self, engine: QueryEngine, snapshot_id: int | None = None, as_of: int | None = None) -> pa.Table:
        table, plan = engine.plan(self.name, snapshot_id=snapshot_id, as_of=as_of)
        if plan.snapshot_id is None or table is None:
            return self._empty_state(engine, table, plan)
        current = table.current_snapshot()
        is_current = current is not None and current.snapshot_id == plan.snapshot_id
        cached, _ = self._lookup(plan)
        if cached is not None:
            return cached
        with self._build_lock:
            cached, known = self._lookup(plan)
            if cached is not None:
                return cached
            state = self._advance(engine, table, plan, known) if is_current else None
            if state is None:
                state = self._fold(engine, Scan(self.name, table, plan, list(plan.files)))
            with self._lock:
                if is_current:
                    if self._current is None or (self._current[0].committed_at_ms or 0) <= (plan.committed_at_ms or 0):
                        self._current = (plan, state)
                else:
                    self._pinned[plan.snapshot_id] = state
                    while len(self._pinned) > self._max_pinned:
                        self._pinned.popitem(last=False)
        return state

    def _lookup(self, plan: TablePlan) -> tuple[pa.Table | None, tuple[TablePlan, pa.Table] | None]:
        """The state kept for `plan`'s snapshot (None: not kept), and the current state to advance from."""
        with self._lock:
            known = self._current
            if known is not None and known[0].snapshot_id == plan.snapshot_id:
                return known[1], known
            return self._pinned.get(plan.snapshot_id), known  # type: ignore[arg-type]

    def _empty_state(self, engine: QueryEngine, table, plan: TablePlan) -> pa.Table:
        """No snapshot yet: an empty state typed by the table's schema, made once per schema (not per request)."""
        key = None if table is None else (table.metadata.table_uuid, table.schema().schema_id)
        empty = self._empty
        if empty is not None and empty[0] == key:
            return empty[1]
        state = self._fold(engine, Scan(self.name, table, plan, []))
        self._empty = (key, state)
        return state

    def _advance(self, engine: QueryEngine, table, plan: TablePlan, known) -> pa.Table | None:
        """Fold the files `plan` added to an older state; None when the older files are not all still live."""
        if known is None or plan.has_deletes or known[0].has_deletes:
            return None
        before = {f.path for f in known[0].files}
        now = {f.path for f in plan.files}
        if not before <= now:
            return None
        added = [f for f in plan.files if f.path not in before]
        if not added:
            return known[1]
        return _merge(engine, known[1], self._fold(engine, Scan(self.name, table, plan, added)))

    def _fold(self, engine: QueryEngine, scan: Scan) -> pa.Table:
        return engine.execute(_FOLD_ROWS, {}, {"src": scan})


def latest_indexes() -> dict[str, LatestIndex]:
    return {TRADES: LatestIndex(TRADES), QUOTES: LatestIndex(QUOTES)}


def latest_by_symbol(
    engine: QueryEngine,
    indexes: dict[str, LatestIndex],
    *,
    symbols: list[str] | None = None,
    exchange: str | None = None,
    snapshot_ids: dict[str, int] | None = None,
    as_of: int | None = None,
    realtime: bool = False,
) -> tuple[pa.Table, dict[str, Freshness]]:
    """One row per instrument: its newest trade and newest quote (structs, null when it has none); `realtime`
    folds in the Kafka tail above the snapshot's seam."""
    arrows, sources, freshness = {}, {}, {}
    states, tails = {}, {}
    for name, alias in ((TRADES, "t"), (QUOTES, "q")):
        # One snapshot per table: its kept state, and (realtime) the tail above exactly its seam.
        pinned = (snapshot_ids or {}).get(name)
        scan = engine.scan(name, Selection(symbols, snapshot_id=pinned, as_of=as_of, realtime=realtime))
        state = indexes[name].state(engine, snapshot_id=scan.plan.snapshot_id)
        if symbols:  # a few instruments of many: only theirs are folded and joined
            state = state.filter(pc.is_in(state["symbol"], value_set=pa.array(symbols, state["symbol"].type)))
        states[alias] = arrows[f"{alias}_state"] = state
        sources[alias] = f"{{{alias}_state}}"
        if scan.tail is not None and scan.tail.rows.num_rows:
            tails[alias] = arrows[f"{alias}_tail"] = scan.tail.rows
            # The tail's rows folded into the kept state inside the one query below (each query has a fixed cost).
            as_state = (
                "SELECT exchange, symbol, r AS latest, r.timestamp AS first_time, 1::BIGINT AS rows"
                f" FROM {{{alias}_tail}} AS r"
            )
            both = f"(SELECT * FROM {sources[alias]} UNION ALL BY NAME {as_state})"
            sources[alias] = f"({_FOLD.format(parts=both)})"
        freshness[name] = scan.freshness
    if symbols and tails:
        # A few named instruments: folding their kept rows and tail rows here is much cheaper than the SQL below,
        # which was the main cost realtime added to a one-symbol latest (benchmarks/report.md,
        # "Design measurements: Latest index").
        return _fold_in_python(states, tails, exchange), freshness
    params: dict[str, Any] = {}
    clauses = []
    if symbols:
        names = [f"symbol_{i}" for i in range(len(symbols))]
        params.update(zip(names, symbols, strict=True))
        clauses.append(f"symbol IN ({', '.join('$' + n for n in names)})")
    if exchange:
        params["exchange"] = exchange
        clauses.append("exchange = $exchange")
    sql = (
        "SELECT exchange, symbol, t.latest AS trade, q.latest AS quote"
        f" FROM {sources['t']} AS t FULL OUTER JOIN {sources['q']} AS q USING (exchange, symbol)"
        f" WHERE {' AND '.join(clauses) or 'TRUE'} ORDER BY exchange, symbol"
    )
    return engine.execute(sql, params, {}, arrows=arrows), freshness


def _newest_key(row: dict[str, Any]) -> tuple:
    """The index's order: the greatest (timestamp, sequence, source position) is the newest row."""
    sequence = row["source_sequence"]
    return (
        row["timestamp"],
        -1 if sequence is None else sequence,
        row["source_topic"],
        row["source_partition"],
        row["source_offset"],
    )


def _newest_per_instrument(rows: pa.Table) -> list[dict[str, Any]]:
    """The newest row of each instrument among `rows`, as dicts: sorted newest first, the first of each kept."""
    order = ["timestamp", "source_sequence", "source_topic", "source_partition", "source_offset"]
    # Nulls last: a row without a sequence sorts below any with one at the same time (coalesce(-1) in SQL).
    ordered = rows.sort_by([(column, "descending", "at_end") for column in order])
    seen: set[tuple[str, str]] = set()
    first = []
    for index, key in enumerate(zip(ordered["exchange"].to_pylist(), ordered["symbol"].to_pylist(), strict=True)):
        if key not in seen:
            seen.add(key)
            first.append(index)
    return ordered.take(first).to_pylist()


def _fold_in_python(states: dict[str, pa.Table], tails: dict[str, pa.Table], exchange: str | None) -> pa.Table:
    """What the SQL fold and join return, for a few instruments: per instrument the newest of its kept row and its
    tail rows, trades and quotes side by side."""
    newest: dict[tuple[str, str], dict[str, dict | None]] = {}
    types = {}
    for alias, column in (("t", "trade"), ("q", "quote")):
        latest_type = states[alias].schema.field("latest").type
        types[column] = latest_type
        names = [latest_type.field(i).name for i in range(latest_type.num_fields)]
        candidates = [(row["exchange"], row["symbol"], row["latest"]) for row in states[alias].to_pylist()]
        if alias in tails:
            candidates += [
                (row["exchange"], row["symbol"], {name: row.get(name) for name in names})
                for row in _newest_per_instrument(tails[alias])
            ]
        for exchange_name, symbol, row in candidates:
            if exchange and exchange_name != exchange:
                continue
            slot = newest.setdefault((exchange_name, symbol), {"trade": None, "quote": None})
            if slot[column] is None or _newest_key(row) > _newest_key(slot[column]):
                slot[column] = row
    schema = pa.schema(
        [
            ("exchange", pa.large_string()),
            ("symbol", pa.large_string()),
            ("trade", types["trade"]),
            ("quote", types["quote"]),
        ]
    )
    rows = [{"exchange": key[0], "symbol": key[1], **sides} for key, sides in sorted(newest.items())]
    return pa.Table.from_pylist(rows, schema=schema)


def instruments(engine: QueryEngine, indexes: dict[str, LatestIndex], exchange: str | None = None) -> pa.Table:
    """Every instrument with trade and quote counts and its first and last event times."""
    params: dict[str, Any] = {}
    clause = "TRUE"
    if exchange:
        params["exchange"], clause = exchange, "exchange = $exchange"
    sql = (
        "SELECT exchange, symbol, coalesce(t.rows, 0) AS trades, coalesce(q.rows, 0) AS quotes,"
        " least(t.first_time, q.first_time) AS first_time,"
        " greatest(t.latest.timestamp, q.latest.timestamp) AS last_time,"
        " t.latest.timestamp AS last_trade_time, t.latest.price AS last_price"
        " FROM {trades} AS t FULL OUTER JOIN {quotes} AS q USING (exchange, symbol)"
        f" WHERE {clause} ORDER BY exchange, symbol"
    )
    arrows = {name: indexes[name].state(engine) for name in (TRADES, QUOTES)}
    return engine.execute(sql, params, {}, arrows={"trades": arrows[TRADES], "quotes": arrows[QUOTES]})


def exchanges_of(engine: QueryEngine, indexes: dict[str, LatestIndex], symbol: str) -> list[str]:
    state = indexes[TRADES].state(engine)
    found = state.filter(pc.equal(state.column("symbol"), symbol)).column("exchange").to_pylist()
    return sorted(found)
