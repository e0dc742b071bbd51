"""An s3:// warehouse on a real S3 API (moto's server): the flow writes there, the engine and the API read it back
without any DuckDB extension download (DuckDB's S3 support is fetched at run time; K2 reads through pyiceberg)."""

from __future__ import annotations

from decimal import Decimal

from litestar.testing import TestClient

from api.app import create_app
from k2.ops.config import load_settings
from k2.query import QueryEngine, Selection, bars, parse_interval, ticks_between
from k2.storage.catalog import open_catalog
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import T0, raw_batch, trade
from tests.fixtures.s3 import ACCESS_KEY, REGION, SECRET_KEY, s3_server


def test_s3_warehouse_round_trip(tmp_path):
    with s3_server(tmp_path, "k2-warehouse") as endpoint:
        settings = load_settings(
            {},
            data_dir=str(tmp_path / "k2"),
            warehouse="s3://k2-warehouse/k2",
            s3_endpoint=endpoint,
            s3_access_key_id=ACCESS_KEY,
            s3_secret_access_key=SECRET_KEY,
            s3_region=REGION,
            epoch_seconds=0.05,
            api_keys="s3-key",
        )
        trades = [trade(trade_id=str(i), source_sequence=i, timestamp=T0 + i, price=f"0.{i}") for i in range(1, 8)]
        landed = run_ingest(settings, [raw_batch(trades)])
        assert landed.tables["trades"].num_rows == 7
        table = open_catalog(settings).load_table((settings.namespace, "trades"))
        assert all(
            path.startswith("s3://k2-warehouse/k2/") for path in table.inspect.files().column("file_path").to_pylist()
        )

        engine = QueryEngine.from_settings(settings)
        page = ticks_between(engine, "trades", Selection(["AAPL"], start=T0 + 2, end=T0 + 5))
        assert page.rows.column("trade_id").to_pylist() == ["2", "3", "4"]
        (bar,) = bars(engine, Selection(["AAPL"], "XNAS"), parse_interval("1m"), "UTC").rows.to_pylist()
        assert (bar["open"], bar["close"], bar["trades"]) == (Decimal("0.1"), Decimal("0.7"), 7)
        engine.close()

        with TestClient(create_app(settings)) as client:
            body = client.get("/v1/trades", params={"limit": 3}, headers={"X-API-Key": "s3-key"}).json()
            assert [row["price"] for row in body["data"]] == ["0.10000000", "0.20000000", "0.30000000"]
