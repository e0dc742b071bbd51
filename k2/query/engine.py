"""The query engine: pyiceberg picks the files of a snapshot, DuckDB reads them.

Each query is pinned to one snapshot (the newest, or one chosen by id or by time) and answers with that
snapshot's freshness. SQL is parameterised; the only text put into it is our own (column names, the file source).
Where DuckDB cannot read a snapshot exactly by itself (delete files, or a warehouse that is not a local folder:
DuckDB's S3 support is an extension downloaded at run time) the rows come through pyiceberg's reader instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, GreaterThanOrEqual, In, LessThan
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table

from k2.ops.config import Settings
from k2.query.params import Conflict, NotFound, QueryError
from k2.query.plan import DataFileEntry, Planner, TablePlan
from k2.storage.catalog import DEAD_LETTERS, QUOTES, SCHEMAS, SEQUENCE_GAPS, TRADES, local_path, open_catalog

log = logging.getLogger(__name__)

TIME_COLUMN = {TRADES: "timestamp", QUOTES: "timestamp", SEQUENCE_GAPS: "timestamp", DEAD_LETTERS: "source_timestamp"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


class TailSlice(msgspec.Struct, frozen=True):
    """Rows of one table not yet in Iceberg: the Kafka tail above a snapshot's seam (see `k2.query.hybrid`)."""

    table: str
    rows: pa.Table
    offsets: dict[str, tuple[int, int]]  # partition -> [seam, position read): where the tail rows come from
    complete: bool  # the tail reached every partition's high watermark as seen when the query began


class TailInfo(msgspec.Struct, frozen=True):
    """The tail's part of a result, as a response reports it."""

    rows: int
    offsets: dict[str, tuple[int, int]]
    complete: bool
    min_event_time: datetime | None
    max_event_time: datetime | None

    @classmethod
    def of(cls, tail: TailSlice) -> TailInfo:
        times = tail.rows.column("timestamp") if tail.rows.num_rows else None
        return cls(
            rows=tail.rows.num_rows,
            offsets=tail.offsets,
            complete=tail.complete,
            min_event_time=None if times is None else pc.min(times).as_py(),
            max_event_time=None if times is None else pc.max(times).as_py(),
        )


class Freshness(msgspec.Struct, frozen=True):
    """What a result reflects: the snapshot read, when it was committed, and the newest event time it covers."""

    table: str
    snapshot_id: int | None
    committed_at: datetime | None
    max_event_time: datetime | None
    offsets: dict[str, int]  # the Kafka seam of that snapshot: `<topic>/<partition>` -> next offset
    tail: TailInfo | None = None  # realtime reads: what came from Kafka beyond the seam

    @classmethod
    def of(cls, plan: TablePlan, tail: TailSlice | None = None) -> Freshness:
        return cls(
            table=plan.table,
            snapshot_id=plan.snapshot_id,
            committed_at=None if plan.committed_at_ms is None else to_datetime(plan.committed_at_ms * 1000),
            max_event_time=None if plan.max_event_time is None else to_datetime(plan.max_event_time),
            offsets=plan.offsets,
            tail=None if tail is None else TailInfo.of(tail),
        )


class Selection(msgspec.Struct, frozen=True, gc=False):
    """Which rows a query reads: of these symbols (None: all), on this exchange (None: any), in `[start, end)`
    (µs; None is open), from which version of the table (the newest, a snapshot id, the newest at or before
    `as_of`) and whether the Kafka tail above that snapshot's seam is included (`realtime`)."""

    symbols: Sequence[str] | None = None
    exchange: str | None = None
    start: int | None = None
    end: int | None = None
    snapshot_id: int | None = None
    as_of: int | None = None
    realtime: bool = False


EVERYTHING = Selection()


class Scan(msgspec.Struct, frozen=True, gc=False):
    """The rows of one table that a query may touch: a snapshot, its pruned files and the query's filters."""

    name: str
    table: Table | None
    plan: TablePlan
    files: list[DataFileEntry]
    symbols: tuple[str, ...] | None = None
    exchange: str | None = None
    start: int | None = None
    end: int | None = None
    tail: TailSlice | None = None  # realtime: rows above the snapshot's seam, read with the snapshot's rows

    @property
    def freshness(self) -> Freshness:
        return Freshness.of(self.plan, self.tail)


class QueryEngine:
    """Plans with pyiceberg (cached per snapshot), executes in DuckDB; safe to share between threads."""

    def __init__(
        self,
        catalog: Catalog,
        namespace: str,
        *,
        refresh_seconds: float = 0.5,
        max_rows: int = 100_000,
        duckdb_threads: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.catalog, self.namespace = catalog, namespace
        self.refresh_seconds, self.max_rows = refresh_seconds, max_rows
        self._clock = clock
        self._db = duckdb.connect(config={"threads": duckdb_threads})
        self._db.execute("SET GLOBAL TimeZone = 'UTC'")  # timestamptz values come back as UTC datetimes
        # Keep Parquet footers between queries: Iceberg never rewrites a data file in place, and re-reading the
        # footers of the planned files was a large part of a point query (benchmarks/report.md,
        # "Design measurements: Parquet footer cache").
        self._db.execute("SET GLOBAL parquet_metadata_cache = true")
        # The parent connection is not thread-safe, creating cursors included (two threads doing it at once were
        # seen to stall the process); each thread keeps one cursor, created under this lock.
        self._db_lock = threading.Lock()
        self._cursors = threading.local()
        self._planners = {name: Planner(column) for name, column in TIME_COLUMN.items()}
        self._tables: dict[str, tuple[float, Table | None]] = {}
        self._refreshing: set[str] = set()  # tables a background re-read is under way for
        self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="k2-table-refresh")
        self._lock = threading.Lock()
        # Set by whoever runs a Kafka tail follower (the API, when a broker is configured): realtime reads.
        # Called as tail_source(table, seam, symbols, start, end).
        self.tail_source: Callable[..., TailSlice] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryEngine:
        return cls(
            open_catalog(settings),
            settings.namespace,
            refresh_seconds=settings.query_refresh_seconds,
            max_rows=settings.query_max_rows,
        )

    def close(self) -> None:
        self._refresher.shutdown(wait=True)
        with self._db_lock:
            self._db.close()

    # --- snapshots -------------------------------------------------------------------------------------------

    def table(self, name: str) -> Table | None:
        """The table's metadata, at most `refresh_seconds` old (None: not created).

        Past half that age a query still gets the cached metadata and a background thread re-reads it from the
        catalog, so a steady stream of queries never waits on the catalog (a re-read in the query path weighed on
        many queries: benchmarks/report.md, "Design measurements: Table metadata refresh"). Only past the full age
        does a query re-read it itself; the staleness bound is the same either way.
        """
        now = self._clock()
        with self._lock:
            cached = self._tables.get(name)
            if cached is not None and now - cached[0] < self.refresh_seconds:
                if now - cached[0] >= self.refresh_seconds / 2 and name not in self._refreshing:
                    self._refreshing.add(name)
                    self._refresher.submit(self._refresh_in_background, name)
                return cached[1]
        return self._load(name, now)

    def _load(self, name: str, now: float) -> Table | None:
        try:
            table: Table | None = self.catalog.load_table((self.namespace, name))
        except NoSuchTableError:
            table = None
        with self._lock:
            if now >= self._tables.get(name, (now, None))[0]:  # a slower, older read never replaces a newer one
                self._tables[name] = (now, table)
        return table

    def _refresh_in_background(self, name: str) -> None:
        try:
            self._load(name, self._clock())
        except Exception as exc:  # the next query past the full age reads it itself, and reports the failure
            log.warning("background refresh of %s failed: %s", name, exc, extra={"table": name, "error": repr(exc)})
        finally:
            with self._lock:
                self._refreshing.discard(name)

    def plan(
        self, name: str, *, snapshot_id: int | None = None, as_of: int | None = None
    ) -> tuple[Table | None, TablePlan]:
        """The plan of the newest snapshot, of `snapshot_id`, or of the newest committed at or before `as_of` (µs)."""
        table = self.table(name)
        if table is None:
            if snapshot_id is not None:
                raise NotFound(f"no snapshot {snapshot_id} in {name} (the table does not exist yet)")
            return None, self._planners[name].plan(None, None, name)  # type: ignore[arg-type]
        if snapshot_id is not None:
            snapshot = table.snapshot_by_id(snapshot_id)
            if snapshot is None:
                table = self.table_now(name)
                snapshot = table.snapshot_by_id(snapshot_id) if table is not None else None
            if snapshot is None:
                raise NotFound(f"no snapshot {snapshot_id} in {name} (expired, or never was)")
        elif as_of is not None:
            snapshot = table.snapshot_as_of_timestamp(as_of // 1000)
            if snapshot is None:
                raise NotFound(f"no snapshot of {name} at or before {to_datetime(as_of).isoformat()}")
        else:
            snapshot = table.current_snapshot()
        return table, self._planners[name].plan(table, snapshot, name)

    def table_now(self, name: str) -> Table | None:
        """The table re-read now (a pinned snapshot newer than the cached metadata)."""
        with self._lock:
            self._tables.pop(name, None)
        return self.table(name)

    def scan(self, name: str, selection: Selection = EVERYTHING) -> Scan:
        """The files of a snapshot that may hold the selected rows; `realtime` adds the Kafka tail above its seam."""
        symbols, start, end = selection.symbols, selection.start, selection.end
        if selection.realtime and self.tail_source is None:
            raise Conflict("this server has no Kafka tail (K2_KAFKA_BOOTSTRAP): ask for committed data")
        if selection.realtime and (selection.snapshot_id is not None or selection.as_of is not None):
            raise QueryError("freshness=realtime reads the newest data; it cannot be pinned to a snapshot")
        table, plan = self.plan(name, snapshot_id=selection.snapshot_id, as_of=selection.as_of)
        files = plan.prune(symbols, start, end)
        tail = None
        if selection.realtime and self.tail_source is not None:
            tail = self.tail_source(name, plan.offsets, symbols, start, end)
        chosen = tuple(symbols) if symbols else None
        return Scan(name, table, plan, files, chosen, selection.exchange, start, end, tail)

    # --- execution -------------------------------------------------------------------------------------------

    def execute(
        self,
        sql: str,
        params: dict[str, Any],
        scans: dict[str, Scan],
        arrows: dict[str, pa.Table] | None = None,
    ) -> pa.Table:
        """Run `sql`, where `{<alias>}` names the rows of each scan (and each of `arrows`), and return Arrow."""
        cursor = self._cursor()
        registered: list[str] = []
        try:
            sources = {alias: self._source(cursor, alias, scan, params, registered) for alias, scan in scans.items()}
            for alias, data in (arrows or {}).items():
                cursor.register(f"arrow_{alias}", data)
                registered.append(sources.setdefault(alias, f"arrow_{alias}"))
            return cursor.sql(sql.format(**sources), params=params).to_arrow_table()
        except (duckdb.Error, OSError, pa.ArrowException) as exc:  # DuckDB's reader, or pyarrow's via pyiceberg
            raise _failure(cursor, scans, exc) from exc
        finally:
            for view in registered:  # registered Arrow data would otherwise live as long as the thread
                cursor.unregister(view)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._cursors, "cursor", None)
        if cursor is None:
            with self._db_lock:
                cursor = self._cursors.cursor = self._db.cursor()
        return cursor

    def _source(
        self, cursor: duckdb.DuckDBPyConnection, alias: str, scan: Scan, params: dict[str, Any], registered: list[str]
    ) -> str:
        committed = self._committed_source(cursor, alias, scan, params, registered)
        if scan.tail is None or not scan.tail.rows.num_rows:
            return committed
        view = f"tail_{alias}"
        cursor.register(view, scan.tail.rows)
        registered.append(view)
        return f"(SELECT * FROM {committed} UNION ALL BY NAME SELECT * FROM {view})"

    def _committed_source(
        self, cursor: duckdb.DuckDBPyConnection, alias: str, scan: Scan, params: dict[str, Any], registered: list[str]
    ) -> str:
        if scan.files and not scan.plan.has_deletes and all(_local(f.path) for f in scan.files):
            params[f"files_{alias}"] = [local_path(f.path) for f in scan.files]
            # union_by_name: files written before a column was added simply lack it (nulls).
            return f"read_parquet($files_{alias}, union_by_name = true, hive_partitioning = false)"
        view = f"rows_{alias}"
        cursor.register(view, self._read_with_pyiceberg(scan))
        registered.append(view)
        return view

    def _read_with_pyiceberg(self, scan: Scan) -> pa.Table:
        if scan.table is None or scan.plan.snapshot_id is None or not scan.files:
            return schema_to_pyarrow(
                scan.table.schema() if scan.table is not None else SCHEMAS[scan.name], include_field_ids=False
            ).empty_table()
        return scan.table.scan(row_filter=_row_filter(scan), snapshot_id=scan.plan.snapshot_id).to_arrow()


class QueryFailed(RuntimeError):
    """DuckDB or storage failed on data we planned (a broken file, storage down): a server-side error.

    `path` is the data file found unreadable, when the failure comes down to one.
    """

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


# Errors in our own SQL text: no data file is to blame, so none is looked for.
_SQL_ERRORS = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)


def _failure(cursor: duckdb.DuckDBPyConnection, scans: dict[str, Scan], exc: Exception) -> QueryFailed:
    """The error to report: it names the unreadable data file when there is one.

    DuckDB names the file only for some damage (a missing footer); a broken page deep inside says just
    "Corrupted file?". Then every local file the query read is read whole, one at a time, until one fails: costly,
    but only on this path, and an operator learns which file to restore instead of which query broke.
    """
    names = ", ".join(scan.name for scan in scans.values())
    if isinstance(exc, _SQL_ERRORS):
        return QueryFailed(f"query on {names} failed: {exc}")
    paths = [entry.path for scan in scans.values() for entry in scan.files]
    text = str(exc)
    found = next(((path, text) for path in paths if local_path(path) in text), None)
    found = found or _first_unreadable(cursor, [path for path in paths if _local(path)])
    if found is None:
        return QueryFailed(f"query on {names} failed: {exc}")
    path, reason = found
    return QueryFailed(f"query on {names} failed: data file {path} is unreadable: {reason}", path=path)


def _first_unreadable(cursor: duckdb.DuckDBPyConnection, paths: list[str]) -> tuple[str, str] | None:
    for path in paths:
        try:
            rows = cursor.sql("SELECT * FROM read_parquet($file)", params={"file": local_path(path)})
            for _ in rows.to_arrow_reader():  # streamed: every page decoded, none kept
                pass
        except duckdb.Error as exc:
            return path, str(exc)
    return None


def _local(path: str) -> bool:
    return path.startswith(("/", "file:"))


def _row_filter(scan: Scan) -> BooleanExpression:
    column = TIME_COLUMN[scan.name]
    terms: list[BooleanExpression] = []
    if scan.symbols:
        terms.append(In("symbol", scan.symbols) if len(scan.symbols) > 1 else EqualTo("symbol", scan.symbols[0]))
    if scan.exchange:
        terms.append(EqualTo("exchange", scan.exchange))
    if scan.start is not None:
        terms.append(GreaterThanOrEqual(column, scan.start))
    if scan.end is not None:
        terms.append(LessThan(column, scan.end))
    expression: BooleanExpression = AlwaysTrue()
    for term in terms:
        expression = term if isinstance(expression, AlwaysTrue) else And(expression, term)
    return expression
