"""Queries side by side on the same trades and quotes: K2's engine (in process), K2's API (`python -m api` on
loopback) and QuestDB (HTTP `/exec` on loopback), with the same random choices (benchmarks/query.py's), the
methods interleaved query by query. Per query kind, p50/p95; then the answers of the first choices compared
(engine vs QuestDB in full, the API by row count against the engine).

- point: one symbol, one minute      (`ticks_between`      | `WHERE symbol = .. AND ts IN [a, b)`)
- bars:  1-minute bars, symbol-day    (`bars`               | `SAMPLE BY 1m`)
- latest trade per symbol             (`latest_by_symbol`   | `LATEST ON ts PARTITION BY symbol`)
- as-of join, one symbol-hour         (`trades_with_quotes` | `ASOF JOIN .. ON (symbol) TOLERANCE 1s`)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import httpx

from benchmarks.peers.questdb import QuestDB
from benchmarks.query_api import API_KEY, ApiServer
from benchmarks.query_data import EXCHANGE, TZ
from benchmarks.query_methods import LIMIT, interleaved, summary
from k2.query import QueryEngine, Selection, bars, latest_by_symbol, latest_indexes, parse_interval, ticks_between
from k2.query.asof import trades_with_quotes
from k2.storage.catalog import TRADES

HOUR_US = 3_600_000_000
TOLERANCE_US = 1_000_000
EIGHT = Decimal("0.00000001")


def iso(us: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def us_of(value: Any) -> int:
    """µs since the epoch of an engine datetime or a QuestDB ISO timestamp."""
    if isinstance(value, str):
        value = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def in_window(c) -> str:
    return f"symbol = '{c[0]}' AND ts >= '{iso(c[1])}' AND ts < '{iso(c[2])}'"


class Methods:
    """Each query kind as each system answers it: `run` (timed, returns a row count) and `answer` (compared)."""

    def __init__(self, engine: QueryEngine, api: httpx.Client, qdb: QuestDB):
        self.engine, self.api, self.qdb = engine, api, qdb
        self.interval = parse_interval("1m")
        self.indexes = latest_indexes()

    def _api(self, path: str, params: dict[str, Any]) -> int:
        response = self.api.get(path, params=params)
        response.raise_for_status()
        body = response.json()
        return int(body["meta"]["count"]) if "meta" in body else len(body["data"])  # /latest: one meta per table

    # point
    def point_engine(self, c) -> list[tuple]:
        rows = ticks_between(self.engine, TRADES, Selection([c[0]], start=c[1], end=c[2]), limit=LIMIT).rows
        return [(us_of(r["timestamp"]), r["trade_id"], r["price"], r["quantity"]) for r in rows.to_pylist()]

    def point_api(self, c) -> int:
        return self._api("/v1/trades", {"symbol": c[0], "start": str(c[1]), "end": str(c[2]), "limit": LIMIT})

    def point_questdb(self, c) -> list[tuple]:
        rows = self.qdb.rows(f"SELECT * FROM trades WHERE {in_window(c)} LIMIT {LIMIT}")  # every column, as K2
        return [(us_of(r[0]), r[4], dec(r[5]), dec(r[6])) for r in rows]  # ts, trade_id, price, quantity

    # bars
    def bars_engine(self, c) -> list[tuple]:
        rows = bars(self.engine, Selection([c[0]], EXCHANGE, c[1], c[2]), self.interval, TZ).rows.to_pylist()
        return [
            (us_of(r["start"]), r["open"], r["high"], r["low"], r["close"], r["volume"], r["trades"], r["vwap"])
            for r in rows
        ]

    def bars_api(self, c) -> int:
        params = {"symbol": c[0], "exchange": EXCHANGE, "start": str(c[1]), "end": str(c[2]), "interval": "1m"}
        return self._api("/v1/bars", params)

    def bars_questdb(self, c) -> list[tuple]:
        rows = self.qdb.rows(
            "SELECT ts, first(price), max(price), min(price), last(price), sum(quantity), count(),"
            f" sum(price * quantity) / sum(quantity) FROM trades WHERE {in_window(c)} SAMPLE BY 1m ALIGN TO CALENDAR"
        )
        return [(us_of(r[0]), *map(dec, r[1:6]), r[6], dec(r[7])) for r in rows]

    # latest
    def latest_engine(self, _=None) -> list[tuple]:
        rows = latest_by_symbol(self.engine, self.indexes)[0].to_pylist()
        trades = [(r["symbol"], r["trade"]) for r in rows if r.get("trade")]
        return sorted((s, us_of(t["timestamp"]), t["price"], t["quantity"]) for s, t in trades)

    def latest_api(self, _=None) -> int:
        return self._api("/v1/latest", {})

    def latest_questdb(self, _=None) -> list[tuple]:
        rows = self.qdb.rows("SELECT symbol, ts, price, quantity FROM trades LATEST ON ts PARTITION BY symbol")
        return sorted((r[0], us_of(r[1]), dec(r[2]), dec(r[3])) for r in rows)

    # as-of join
    def asof_engine(self, c) -> list[tuple]:
        page, _ = trades_with_quotes(
            self.engine, Selection([c[0]], start=c[1], end=c[2]), tolerance_us=TOLERANCE_US, limit=self.engine.max_rows
        )
        return [(us_of(r["timestamp"]), r["trade_id"], r["bid_price"], r["ask_price"]) for r in page.rows.to_pylist()]

    def asof_api(self, c) -> int:
        params = {"symbol": c[0], "start": str(c[1]), "end": str(c[2]), "limit": self.engine.max_rows}
        return self._api("/v1/asof", params)

    def asof_questdb(self, c) -> list[tuple]:
        quotes = (c[0], c[1] - TOLERANCE_US, c[2])
        rows = self.qdb.rows(
            f"SELECT t.ts, t.trade_id, q.bid_price, q.ask_price FROM (SELECT * FROM trades WHERE {in_window(c)}) t"
            # QuestDB 9.2.2 fails to return the joined side's DECIMAL columns from an ASOF JOIN
            # (UnsupportedOperationException in Record.getDecimal64): they travel as their exact text instead.
            " ASOF JOIN (SELECT ts, symbol, CAST(bid_price AS STRING) bid_price, CAST(ask_price AS STRING) ask_price"
            f" FROM quotes WHERE {in_window(quotes)}) q ON (symbol) TOLERANCE 1s"
        )
        return [(us_of(r[0]), r[1], dec(r[2]), dec(r[3])) for r in rows]


def counted(fn: Callable[[Any], Any]) -> Callable[[Any], int]:
    def run(c) -> int:
        answer = fn(c)
        return answer if isinstance(answer, int) else len(answer)

    return run


def differences(kind: str, ours: list[tuple], theirs: list[tuple]) -> dict[str, Any]:
    """How two answers differ: rows only one has, and for bars the VWAP compared exactly and at 8 decimals."""
    if kind == "bars":
        exact = sum(a[7] != b[7] for a, b in zip(ours, theirs, strict=False))
        # K2 rounds VWAP to 8 decimals (half even); QuestDB keeps its division's scale
        ours_set = set(ours)
        theirs_set = {(*b[:7], None if b[7] is None else b[7].quantize(EIGHT, ROUND_HALF_EVEN)) for b in theirs}
        return {"rows": [len(ours), len(theirs)], "only_k2": len(ours_set - theirs_set),
                "only_peer": len(theirs_set - ours_set), "vwap_digits_differ": exact}  # fmt: skip
    ours_set, theirs_set = set(ours), set(theirs)
    return {"rows": [len(ours), len(theirs)], "only_k2": len(ours_set - theirs_set),
            "only_peer": len(theirs_set - ours_set)}  # fmt: skip


def compare(methods: Methods, choices: dict[str, list], checks: int) -> dict[str, Any]:
    result = {}
    for kind, picked in choices.items():
        totals = {"rows": [0, 0], "only_k2": 0, "only_peer": 0, "api_count_matches": True}
        for c in picked[:checks]:
            ours = getattr(methods, f"{kind}_engine")(c)
            found = differences(kind, ours, getattr(methods, f"{kind}_questdb")(c))
            totals["api_count_matches"] &= getattr(methods, f"{kind}_api")(c) == len(ours)
            for key, value in found.items():
                totals[key] = [x + y for x, y in zip(totals[key], value, strict=True)] if key == "rows" else (
                    totals.get(key, 0) + value)  # fmt: skip
        totals["same_answers"] = totals["only_k2"] == 0 and totals["only_peer"] == 0
        result[kind] = totals
    return result


def measure(settings, qdb: QuestDB, choices: dict[str, list], latest_rounds: int, log) -> dict[str, Any]:
    engine = QueryEngine.from_settings(settings)
    try:
        with ApiServer(settings.data_path, settings.data_path / "api.log") as server:
            startup = server.wait_ready()
            with httpx.Client(base_url=server.base, headers={"X-API-Key": API_KEY}, timeout=120.0) as api:
                methods = Methods(engine, api, qdb)
                timings: dict[str, Any] = {}
                for kind, picked in choices.items():
                    runs = {name: counted(getattr(methods, f"{kind}_{name}")) for name in ("engine", "api", "questdb")}
                    picked = picked if kind != "latest" else [None] * latest_rounds
                    log(f"  {kind}: {len(picked)} queries per method, interleaved ...")
                    times, _ = interleaved(runs, picked, warmup=min(3, len(picked)))
                    timings[kind] = {name: summary(t) for name, t in times.items()}
                answers = compare(methods, choices, checks=min(20, len(choices["point"])))
    finally:
        engine.close()
    return {"api_startup_s": round(startup, 2), "timings": timings, "answers": answers}
