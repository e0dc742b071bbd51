"""Real ASX ticks (Sydney, AEDT) through the flow into Iceberg, then the API's bars, VWAP, latest and as-of join
compared with DuckDB queries written directly over the same Parquet files."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import duckdb
import pytest
from litestar.testing import TestClient

from api.app import create_app
from k2.loaders import load_asx, to_batches
from k2.ops.config import load_settings
from k2.storage.catalog import open_catalog
from tests.conftest import ASX_SAMPLES
from tests.fixtures.flow import run_ingest

KEY = "asx-key"
ASX = ASX_SAMPLES


@pytest.fixture(scope="module")
def asx(tmp_path_factory):
    settings = load_settings({}, data_dir=str(tmp_path_factory.mktemp("asx") / "k2"), api_keys=KEY,
                             epoch_seconds=0.05, query_refresh_seconds=0)  # fmt: skip
    run_ingest(settings, list(to_batches(load_asx(ASX), partitions=2, batch_size=200)))
    catalog = open_catalog(settings)
    reference = duckdb.connect()
    reference.execute("SET TimeZone = 'UTC'")
    for name in ("trades", "quotes"):
        table = catalog.load_table((settings.namespace, name))
        files = [path.removeprefix("file://") for path in table.inspect.files().column("file_path").to_pylist()]
        reference.register(name, reference.read_parquet(files, hive_partitioning=False))
    with TestClient(create_app(settings)) as client:
        client.headers["X-API-Key"] = KEY
        yield client, reference


def test_daily_bars_are_sydney_trading_days(asx):
    client, reference = asx
    for symbol in ("MWR", "DVN"):
        body = client.get("/v1/bars", params={"symbol": symbol, "interval": "1d"}).json()
        assert body["exchange"] == "ASX" and body["timezone"] == "Australia/Sydney"
        expected = reference.execute(
            """
            SELECT timezone('Australia/Sydney', date_trunc('day', timezone('Australia/Sydney', "timestamp"))) AS day,
                   arg_min(price, ("timestamp", source_sequence)), max(price), min(price),
                   arg_max(price, ("timestamp", source_sequence)), sum(quantity), count(*),
                   sum(price::DECIMAL(38, 8) * quantity::DECIMAL(38, 8)) / sum(quantity)
            FROM trades WHERE symbol = $s GROUP BY day ORDER BY day
            """,
            {"s": symbol},
        ).fetchall()
        got = body["data"]
        assert len(got) == len(expected) >= 3
        for bar, (day, o, h, lo, c, v, n, vwap) in zip(got, expected, strict=True):
            assert bar["start"] == day.strftime("%Y-%m-%dT%H:%M:%SZ")  # Sydney midnight = 13:00 UTC in AEDT
            assert day.hour == 13
            values = (Decimal(bar["open"]), Decimal(bar["high"]), Decimal(bar["low"]), Decimal(bar["close"]))
            assert values == (o, h, lo, c)
            assert (Decimal(bar["volume"]), bar["trades"]) == (v, n)
            assert abs(Decimal(bar["vwap"]) - Decimal(str(vwap))) < Decimal("0.00000001")


def test_minute_bars_and_same_millisecond_fills(asx):
    client, reference = asx
    # Several DVN trades share one millisecond: open/close follow the derived sequence (file order).
    busy = reference.execute(
        """SELECT "timestamp" FROM trades WHERE symbol = 'DVN' GROUP BY "timestamp" HAVING count(*) > 1
           ORDER BY "timestamp" LIMIT 1"""
    ).fetchone()
    assert busy is not None, "the sample has same-millisecond fills"
    start = busy[0].replace(second=0, microsecond=0)
    end = start + timedelta(minutes=1)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    (bar,) = client.get("/v1/bars", params={"symbol": "DVN", "interval": "1m", **window}).json()["data"]
    expected = reference.execute(
        """SELECT arg_min(price, ("timestamp", source_sequence)), arg_max(price, ("timestamp", source_sequence)),
                  count(*)
           FROM trades WHERE symbol = 'DVN' AND "timestamp" >= $a AND "timestamp" < $b""",
        {"a": start, "b": end},
    ).fetchone()
    assert (Decimal(bar["open"]), Decimal(bar["close"]), bar["trades"]) == expected
    assert bar["trades"] > 1


def test_latest_and_asof_match_direct_queries(asx):
    client, reference = asx
    latest = {row["symbol"]: row for row in client.get("/v1/latest", params={"exchange": "ASX"}).json()["data"]}
    for symbol in ("MWR", "DVN"):
        price, sequence = reference.execute(
            """SELECT arg_max(price, ("timestamp", source_sequence)), arg_max(source_sequence,
               ("timestamp", source_sequence)) FROM trades WHERE symbol = $s""",
            {"s": symbol},
        ).fetchone()
        assert Decimal(latest[symbol]["trade"]["price"]) == price
        assert latest[symbol]["trade"]["source_sequence"] == sequence
    joined = client.get("/v1/asof", params={"symbol": "DVN", "tolerance_ms": 86_400_000, "limit": 100_000}).json()
    expected = reference.execute(
        """SELECT t.trade_id, q.quote_id FROM (SELECT * FROM trades WHERE symbol = 'DVN') t
           ASOF LEFT JOIN (SELECT * FROM quotes WHERE symbol = 'DVN'
                           QUALIFY row_number() OVER (PARTITION BY "timestamp" ORDER BY source_sequence DESC) = 1) q
           ON t."timestamp" >= q."timestamp" ORDER BY t."timestamp", t.source_sequence"""
    ).fetchall()
    got = [(row["trade_id"], row["quote_id"]) for row in joined["data"]]
    assert got == expected and any(quote for _, quote in got)
