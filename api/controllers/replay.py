"""`/v1/replay`: trades and quotes of a time range from pinned snapshots, merged in event order, streamed.

NDJSON (default): one K2 wire message (schema v2) per line, exactly what a producer would send, so the stream can be
fed back into the flow. `format=arrow`: an Arrow IPC stream of the merged rows (a `kind` column, exact decimals).
`speed`: omitted = as fast as possible, else N times real time, keeping the original inter-arrival times.
Parameters are checked and the snapshots pinned before the first byte is sent, so mistakes are problem responses.
"""

from typing import Annotated, Literal

from litestar import Controller
from litestar.params import Parameter
from litestar.response import Stream

from api.contract import data_route, streamed_operation
from api.controllers.common import Engine
from api.params import AsOfTime, Rows
from k2.replay import MAX_SPEED, Pacer, Replay, arrow_stream, check_speed, ndjson_stream

MEDIA_TYPES = {"ndjson": "application/x-ndjson", "arrow": "application/vnd.apache.arrow.stream"}

_KIND = r"\s*(?:(?:trade|quote)s?)?\s*"
Kinds = Annotated[
    str | None,
    Parameter(
        description="`trade`, `quote` or `trade,quote` (default: both)",
        schema_extra={"pattern": rf"^(?:{_KIND},)*\s*(?:trade|quote)s?\s*(?:,{_KIND})*$"},
    ),
]
Speed = Annotated[
    float | None,
    Parameter(
        gt=0,
        le=MAX_SPEED,
        description="N times real time (1 = as recorded); omit it for as fast as possible",
        schema_extra={"exclusiveMinimum": 0},  # Litestar drops a falsy `gt` from the schema of an optional number
    ),
]
ReplayFormat = Annotated[
    Literal["ndjson", "arrow", ""] | None,
    Parameter(description="ndjson (default: one wire message per line) or arrow (Arrow IPC stream)"),
]


class ReplayController(Controller):
    path = "/replay"
    tags = ("replay",)

    @data_route(
        "Replay trades and quotes in event order",
        operation_class=streamed_operation(*MEDIA_TYPES.values()),
        description=(
            "Rows of `[start, end)` from one snapshot per table (the newest, or the newest at or before `as_of`), "
            "ordered by (timestamp, source_sequence, kind, exchange, symbol, source position): two replays of the "
            "same snapshots are identical. The pinned snapshots are in `X-K2-Trades-Snapshot-Id` and "
            "`X-K2-Quotes-Snapshot-Id`."
        ),
        name="replay",
    )
    def replay(
        self,
        engine: Engine,
        selection: Rows,
        as_of_us: AsOfTime,
        kinds: Kinds = None,
        speed: Speed = None,
        format: ReplayFormat = None,
    ) -> Stream:
        fmt = format or "ndjson"
        pacer = Pacer(check_speed(speed))
        rows = {"symbols": selection.symbols, "exchange": selection.exchange, "kinds": kinds, "as_of": as_of_us}
        replay = Replay(engine, start=selection.start, end=selection.end, **rows)
        headers = {
            f"X-K2-{table.title()}-Snapshot-Id": str(snapshot)
            for table, snapshot in replay.snapshot_ids.items()
            if snapshot is not None
        }
        body = ndjson_stream(replay, pacer) if fmt == "ndjson" else arrow_stream(replay, pacer)
        return Stream(body, media_type=MEDIA_TYPES[fmt], headers=headers)
