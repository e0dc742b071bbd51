"""The query parameters the data routes share, declared once, and the dependencies that parse them.

A handler asks for what it needs by name (`fmt`, `window`, `symbols`, `selection`, `as_of_us`, `realtime`);
Litestar reads the query parameters each dependency declares and documents them on every route that uses it.
Enumerated values are `Literal`s, so the OpenAPI document lists them; free-form texts carry the pattern their parser
accepts (as `schema_extra`, so a mistake is still answered by the parser's own readable message).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import Parameter

from api.formats import negotiate
from k2.query import Selection
from k2.query.params import INTERVAL_PATTERN, TIME_PATTERN, parse_list, parse_time, time_range, time_zones
from k2.storage.catalog import TABLE_NAMES

# An empty value means the same as leaving the parameter out, for enumerations too (`format=` is JSON by Accept).
OutputFormat = Literal["json", "csv", "parquet", "arrow"]
TableName = Literal[TABLE_NAMES]  # type: ignore[valid-type]
TimeZone = Literal[("", *time_zones())]  # type: ignore[valid-type]

_TIME_FORMS = "ISO-8601 (`2014-03-10T23:00:00Z`; no offset means UTC, a bare date is its midnight) or µs since epoch"
Symbols = Annotated[
    str | None, Parameter(description="one symbol or a comma-separated list (e.g. `MWR,DVN`)", max_length=4_000)
]
SymbolList = Annotated[
    str,
    Parameter(
        description="one symbol or a comma-separated list",
        min_length=1,
        max_length=4_000,
        schema_extra={"pattern": r"[^,\s]"},  # at least one symbol, not only separators
    ),
]
Exchange = Annotated[str | None, Parameter(description="exchange code, e.g. `ASX`", max_length=64)]
Start = Annotated[
    str | None,
    Parameter(description=f"inclusive start: {_TIME_FORMS}", max_length=64, schema_extra={"pattern": TIME_PATTERN}),
]
End = Annotated[
    str | None,
    Parameter(
        description="exclusive end, same forms as `start`", max_length=64, schema_extra={"pattern": TIME_PATTERN}
    ),
]
AsOf = Annotated[
    str | None,
    Parameter(
        description="read the newest snapshot committed at or before this time (same forms as `start`)",
        max_length=64,
        schema_extra={"pattern": TIME_PATTERN},
    ),
]
BarInterval = Annotated[
    str,
    Parameter(
        description="a count and a unit s, m, h, d, w or mo (e.g. 1m, 5m, 1h, 1d, 1mo), at most a year unless months",
        schema_extra={"pattern": INTERVAL_PATTERN},
    ),
]
Zone = Annotated[TimeZone | None, Parameter(description="IANA zone for bucketing (default: the exchange's)")]
Limit = Annotated[int, Parameter(ge=1, le=100_000, description="rows per page")]
SnapshotId = Annotated[int | None, Parameter(description="read this Iceberg snapshot (time travel)")]
Fresh = Annotated[
    Literal["committed", "realtime"],
    Parameter(description="realtime: also the messages still in Kafka beyond the snapshot's seam, each exactly once"),
]
Format = Annotated[
    Literal[OutputFormat, ""] | None,
    Parameter(description="json (default), csv, parquet or arrow; or send an Accept header"),
]
Table = Annotated[TableName, Parameter(description="the table whose snapshots to list")]


class TimeRange(msgspec.Struct, frozen=True):
    """`[start, end)` in µs since the epoch; None is open."""

    start: int | None
    end: int | None


# What handlers (and dependencies) name in their signatures; `DEPENDENCIES` below is registered on the /v1 router.
Fmt = NamedDependency[OutputFormat]
Window = NamedDependency[TimeRange]
SymbolsFilter = NamedDependency[list[str] | None]
AsOfTime = NamedDependency[int | None]
Realtime = NamedDependency[bool]
Rows = NamedDependency[Selection]


def provide_format(request: Request, format: Format = None) -> OutputFormat:
    return negotiate(request, format or None)  # type: ignore[return-value]


def provide_window(start: Start = None, end: End = None) -> TimeRange:
    return TimeRange(*time_range(start, end))


def provide_symbols(symbol: Symbols = None) -> list[str] | None:
    return parse_list(symbol)


def provide_as_of(as_of: AsOf = None) -> int | None:
    return parse_time(as_of, "as_of")


def provide_realtime(freshness: Fresh = "committed") -> bool:
    return freshness == "realtime"


def provide_selection(symbols: SymbolsFilter, window: Window, exchange: Exchange = None) -> Selection:
    """Which rows: the symbols, the exchange and the time window; handlers add the table version they read."""
    return Selection(symbols, exchange, window.start, window.end)


DEPENDENCIES = {
    "fmt": Provide(provide_format, sync_to_thread=False),
    "window": Provide(provide_window, sync_to_thread=False),
    "symbols": Provide(provide_symbols, sync_to_thread=False),
    "as_of_us": Provide(provide_as_of, sync_to_thread=False),
    "realtime": Provide(provide_realtime, sync_to_thread=False),
    "selection": Provide(provide_selection, sync_to_thread=False),
}
