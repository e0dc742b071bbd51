"""K2's query engine: pyiceberg plans each snapshot once, DuckDB reads the pruned Parquet files.

The public face: `QueryEngine` (snapshots, planning, execution) and one function per question —
`ticks_between`, `bars`, `trades_with_quotes`, `latest_by_symbol`, `instruments`, `sequence_gaps`,
`dead_letters`, `snapshots` — each returning Arrow plus the `Freshness` of what it read. A `Selection` says
which rows a question reads (symbols, exchange, time range) and from which version of the tables.
"""

from k2.query.asof import trades_with_quotes
from k2.query.bars import bars
from k2.query.engine import EVERYTHING, Freshness, QueryEngine, QueryFailed, Selection
from k2.query.latest import LatestIndex, exchanges_of, instruments, latest_by_symbol, latest_indexes
from k2.query.params import (
    Conflict,
    Cursor,
    Interval,
    NotFound,
    QueryError,
    exchange_timezone,
    parse_interval,
    parse_time,
)
from k2.query.records import dead_letters, sequence_gaps, snapshots
from k2.query.ticks import FIELDS, Page, ticks_between

__all__ = [
    "EVERYTHING",
    "FIELDS",
    "Conflict",
    "Cursor",
    "Freshness",
    "Interval",
    "LatestIndex",
    "NotFound",
    "Page",
    "QueryEngine",
    "QueryError",
    "QueryFailed",
    "Selection",
    "bars",
    "dead_letters",
    "exchange_timezone",
    "exchanges_of",
    "instruments",
    "latest_by_symbol",
    "latest_indexes",
    "parse_interval",
    "parse_time",
    "sequence_gaps",
    "snapshots",
    "ticks_between",
    "trades_with_quotes",
]
