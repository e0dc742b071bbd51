"""One data file of a real warehouse is damaged on disk: the rest still answers exactly, and whatever reads the
damaged file fails with an error that names it — from the engine and, as a problem document, over HTTP.

The warehouse holds three days of trades (the tables are partitioned by day) written in two ingests, so each day
has several files. The damage is done to the bytes, as a bad disk or a half-finished copy would do it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from k2.ops.config import Settings
from k2.query import QueryEngine, QueryFailed, Selection, ticks_between
from k2.query.engine import to_datetime, to_micros
from k2.storage.catalog import open_catalog
from tests.fixtures.api import api_server
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import T0, raw_batch, trade

DAY = 86_400_000_000
SYMBOLS = ("AAPL", "MSFT")
PER_DAY = 120  # trades per symbol, day and ingest


def truncate_half(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def empty(path: Path) -> None:
    path.write_bytes(b"")


def overwrite_pages(path: Path) -> None:
    """Random bytes over the data pages; magic bytes and footer stay intact, so the metadata still reads."""
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    end = len(data) - 8 - footer
    data[4:end] = random.Random(6).randbytes(end - 4)
    path.write_bytes(bytes(data))


def build_warehouse(settings: Settings) -> list[dict]:
    """Two ingests, each with trades on three days; returns every trade sent (all valid, none repeated)."""
    sent: list[dict] = []
    offset = 0
    for ingest in range(2):
        messages = []
        for day in range(3):
            for symbol in SYMBOLS:
                for i in range(PER_DAY):
                    sequence = (day * 2 + ingest) * PER_DAY + i + 1
                    messages.append(
                        trade(
                            symbol=symbol,
                            trade_id=f"{symbol}-{sequence}",
                            source_sequence=sequence,
                            timestamp=T0 + day * DAY + (ingest * PER_DAY + i) * 1_000_000,
                            price=f"{100 + day}.{sequence % 100:02d}125",
                            quantity=str(sequence),
                        )
                    )
        messages.sort(key=lambda m: (m["symbol"], m["source_sequence"]))
        run_ingest(settings, [raw_batch(messages, "market.trades", 0, offset)])
        offset += len(messages)
        sent += messages
    return sent


def files_of_day(engine: QueryEngine, day: int) -> list[Path]:
    _, plan = engine.plan("trades")
    start = T0 - T0 % DAY + day * DAY
    return [Path(f.path.removeprefix("file:")) for f in plan.prune(None, start, start + DAY)]


def expected_rows(sent: list[dict], start: int, end: int) -> list[tuple]:
    rows = [
        (m["symbol"], m["timestamp"], Decimal(m["price"]), Decimal(m["quantity"]))
        for m in sent
        if start <= m["timestamp"] < end
    ]
    return sorted(rows, key=lambda r: (r[1], r[0]))


def answered_rows(rows: list[dict]) -> list[tuple]:
    return sorted(
        ((r["symbol"], to_micros(r["timestamp"]), r["price"], r["quantity"]) for r in rows), key=lambda r: (r[1], r[0])
    )


def day_bounds(day: int) -> tuple[int, int]:
    start = T0 - T0 % DAY + day * DAY
    return start, start + DAY


@pytest.mark.parametrize("damage", [truncate_half, empty, overwrite_pages], ids=lambda f: f.__name__)
def test_engine_names_the_damaged_file_and_answers_from_the_others(settings, damage: Callable[[Path], None]):
    sent = build_warehouse(settings)
    engine = QueryEngine(open_catalog(settings), settings.namespace, refresh_seconds=0)
    assert all(len(files_of_day(engine, day)) >= 2 for day in range(3)), "each day should have several files"
    victim = files_of_day(engine, 1)[0]
    damage(victim)

    for day in (0, 2):
        start, end = day_bounds(day)
        page = ticks_between(engine, "trades", Selection(start=start, end=end), limit=10_000)
        assert answered_rows(page.rows.to_pylist()) == expected_rows(sent, start, end)
        one = ticks_between(engine, "trades", Selection(["MSFT"], start=start, end=end), limit=10_000)
        assert answered_rows(one.rows.to_pylist()) == [r for r in expected_rows(sent, start, end) if r[0] == "MSFT"]

    for start, end in (day_bounds(1), (None, None)):
        with pytest.raises(QueryFailed) as failed:
            ticks_between(engine, "trades", Selection(start=start, end=end), limit=10_000)
        assert failed.value.path is not None and Path(failed.value.path.removeprefix("file:")) == victim
        assert str(victim) in str(failed.value)
    engine.close()


@pytest.mark.slow
def test_api_answers_a_problem_document_naming_the_damaged_file(settings):
    sent = build_warehouse(settings)
    engine = QueryEngine(open_catalog(settings), settings.namespace, refresh_seconds=0)
    victim = files_of_day(engine, 2)[-1]
    engine.close()
    overwrite_pages(victim)
    key = "chaos-key"

    with api_server(settings, key) as base:
        headers = {"X-API-Key": key}
        start, end = day_bounds(0)
        good = httpx.get(
            f"{base}/v1/trades",
            params={"start": to_datetime(start).isoformat(), "end": to_datetime(end).isoformat(), "limit": 10_000},
            headers=headers,
            timeout=30,
        )
        assert good.status_code == 200, good.text
        rows = [
            (
                r["symbol"],
                to_micros(datetime.fromisoformat(r["timestamp"])),
                Decimal(r["price"]),
                Decimal(r["quantity"]),
            )
            for r in good.json()["data"]
        ]
        assert sorted(rows, key=lambda r: (r[1], r[0])) == expected_rows(sent, start, end)

        start, end = day_bounds(2)
        bad = httpx.get(
            f"{base}/v1/trades",
            params={"start": to_datetime(start).isoformat(), "end": to_datetime(end).isoformat()},
            headers=headers,
            timeout=30,
        )
    assert bad.status_code in (500, 503), bad.text
    assert bad.headers["content-type"].startswith("application/problem+json"), bad.text
    problem = bad.json()
    assert problem["status"] == bad.status_code
    assert str(victim) in problem["detail"]
    assert "Traceback" not in bad.text
    assert os.path.exists(victim)
