"""The API through Litestar's test client on a real temp-dir warehouse: auth, formats, errors, limits, metrics."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import msgspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.auth import ApiKeys, digest
from k2.ops.config import load_settings
from k2.query.engine import to_datetime
from k2.query.params import CURSOR_PATTERN, Cursor
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import T0, VWAP_HALF_EVEN, quote, raw_batch, trade, vwap_tie_trades

KEY = "test-key"
ROUTES = ["trades", "quotes", "bars?symbol=AAPL", "latest", "asof?symbol=AAPL", "symbols", "snapshots", "gaps",
          "dead-letters"]  # fmt: skip


@pytest.fixture
def api_settings(tmp_path):
    return load_settings({}, data_dir=str(tmp_path / "k2"), epoch_seconds=0.05, api_keys=KEY,
                         query_refresh_seconds=0)  # fmt: skip


@pytest.fixture
def client(api_settings):
    trades = [
        trade(trade_id=str(i), source_sequence=i, timestamp=T0 + i * 1_000_000, price=f"1.{i}") for i in range(1, 6)
    ]
    trades.append(b"{broken")
    quotes = [quote(quote_id="q1", source_sequence=1)]
    run_ingest(api_settings, [raw_batch(trades, "market.trades", 0), raw_batch(quotes, "market.quotes", 0)])
    with TestClient(create_app(api_settings)) as test_client:
        test_client.headers["X-API-Key"] = KEY
        yield test_client


@pytest.mark.parametrize("route", ROUTES)
def test_every_data_route_needs_a_valid_key(client, route):
    assert client.get(f"/v1/{route}").status_code == 200
    missing = client.get(f"/v1/{route}", headers={"X-API-Key": ""})
    assert missing.status_code == 401 and missing.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"/v1/{route}", headers={"X-API-Key": "wrong"}).status_code == 403


def test_trades_json_has_exact_decimals_and_freshness(client):
    body = client.get("/v1/trades", params={"symbol": "AAPL", "limit": 2}).json()
    assert [row["price"] for row in body["data"]] == ["1.10000000", "1.20000000"]
    assert body["data"][0]["timestamp"] == "2026-01-05T14:30:01Z"
    meta = body["meta"]
    assert meta["count"] == 2 and meta["snapshot_id"] and meta["next_cursor"]
    assert meta["offsets"] == {"market.trades/0": 6, "market.quotes/0": 1}
    assert meta["max_event_time"] == "2026-01-05T14:30:05Z"
    second = client.get("/v1/trades", params={"cursor": meta["next_cursor"], "limit": 10}).json()
    assert [row["trade_id"] for row in second["data"]] == ["3", "4", "5"] and "next_cursor" not in second["meta"]


def test_field_selection(client):
    body = client.get("/v1/trades", params={"fields": "price,trade_id", "limit": 1}).json()
    assert body["data"] == [{"trade_id": "1", "price": "1.10000000"}]
    assert client.get("/v1/trades", params={"fields": "price,nope"}).status_code == 400


@pytest.mark.parametrize(("fmt", "accept"), [("csv", "text/csv"), ("parquet", "application/vnd.apache.parquet"),
                                             ("arrow", "application/vnd.apache.arrow.stream")])  # fmt: skip
def test_formats_by_parameter_and_accept_header(client, fmt, accept):
    for response in (
        client.get("/v1/trades", params={"format": fmt}),
        client.get("/v1/trades", headers={"Accept": accept}),
    ):
        assert response.status_code == 200 and response.headers["content-type"].startswith(accept)
        assert response.headers["x-k2-count"] == "5" and response.headers["x-k2-snapshot-id"]
        if fmt == "csv":
            as_text = pacsv.ConvertOptions(column_types={"price": pa.string(), "trade_id": pa.string()})
            table = pacsv.read_csv(io.BytesIO(response.content), convert_options=as_text)
            # The fixture's prices 1.1 .. 1.5, written exactly at scale 8, never via float.
            assert table.column("price").to_pylist() == [f"1.{i}0000000" for i in range(1, 6)]
            assert table.column("trade_id").to_pylist() == ["1", "2", "3", "4", "5"]
        elif fmt == "parquet":
            table = pq.read_table(io.BytesIO(response.content))
            assert table.column("price").to_pylist()[0] == Decimal("1.10000000")
        else:
            table = pa.ipc.open_stream(response.content).read_all()
            assert table.column("price").type == pa.decimal128(18, 8) and table.num_rows == 5


@pytest.mark.parametrize(
    "query",
    [
        "/v1/trades?start=yesterday",
        "/v1/trades?limit=0",
        "/v1/trades?limit=abc",
        "/v1/trades?cursor=garbage",
        "/v1/trades?format=xml",
        "/v1/bars?symbol=AAPL&interval=7x",
        "/v1/bars?symbol=AAPL&tz=Mars/Olympus",
        "/v1/bars",
        "/v1/snapshots?table=nope",
    ],
)
def test_bad_parameters_get_a_readable_400(client, query):
    response = client.get(query)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]


def problem(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()["detail"]


def test_what_names_nothing_is_a_404_problem(client):
    first = client.get("/v1/trades", params={"limit": 1}).json()["meta"]
    missing = first["snapshot_id"] + 1  # the fixture's snapshots: one per table, this is none of them
    assert missing not in [s["snapshot_id"] for s in client.get("/v1/snapshots").json()["data"]]
    for route, table in (("trades", "trades"), ("quotes", "quotes"), ("bars", "trades")):
        detail = problem(client.get(f"/v1/{route}", params={"symbol": "AAPL", "snapshot_id": missing}), 404)
        assert detail == f"no snapshot {missing} in {table} (expired, or never was)"
    for route in ("trades", "quotes", "bars", "latest", "asof", "replay"):
        detail = problem(client.get(f"/v1/{route}", params={"symbol": "AAPL", "as_of": "2000-01-02T03:04:05Z"}), 404)
        assert detail.endswith("at or before 2000-01-02T03:04:05+00:00"), detail
    after = Cursor.decode(first["next_cursor"])
    gone = Cursor(missing, after.timestamp, after.topic, after.partition, after.offset).encode()
    detail = problem(client.get("/v1/trades", params={"cursor": gone}), 404)
    assert detail == f"this cursor points to no page: no snapshot {missing} in trades (expired, or never was)"
    assert re.fullmatch(CURSOR_PATTERN, "lQAAAAAA")  # of the encoder's form, but no cursor's bytes
    assert problem(client.get("/v1/trades", params={"cursor": "lQAAAAAA"}), 404).startswith("this cursor points to")


@pytest.mark.parametrize("route", ["trades", "quotes", "bars", "latest"])
def test_realtime_reads_without_a_kafka_tail_are_a_409_problem(client, route):
    for pinned in ({}, {"as_of": "2000-01-01"}):
        detail = problem(client.get(f"/v1/{route}", params={"symbol": "AAPL", "freshness": "realtime", **pinned}), 409)
        assert detail == "this server has no Kafka tail (K2_KAFKA_BOOTSTRAP): ask for committed data"


EMPTY_ANSWERS = [("trades", None), ("quotes", None), ("bars", "false"), ("bars", "true"), ("asof", None),
                 ("gaps", None), ("dead-letters", None), ("replay", None)]  # fmt: skip


@pytest.mark.parametrize(("route", "fill"), EMPTY_ANSWERS)
def test_an_empty_interval_is_an_empty_answer(client, route, fill):
    # The fixture's trades are at T0 + 1..5 s: [T0 + 2 s, T0 + 3 s) holds trade 2; swapped or of no length, nothing.
    params = {"symbol": "AAPL", **({"fill": fill} if fill else {})}
    two, three = (to_datetime(T0 + s * 1_000_000).isoformat() for s in (2, 3))
    if route in ("trades", "bars", "asof"):
        found = client.get(f"/v1/{route}", params={**params, "start": two, "end": three}).json()
        assert len(found["data"]) == 1, found["data"]
    for start, end in ((three, two), (two, two)):
        response = client.get(f"/v1/{route}", params={**params, "start": start, "end": end})
        assert response.status_code == 200, response.text
        assert response.content == b"" if route == "replay" else response.json()["data"] == []


def test_filled_bars_without_a_range_fill_between_the_first_and_last_bar(client):
    plain = client.get("/v1/bars", params={"symbol": "AAPL", "interval": "1s"}).json()["data"]
    assert [bar["trades"] for bar in plain] == [1] * 5  # the fixture's trades, one a second
    filled = client.get("/v1/bars", params={"symbol": "AAPL", "interval": "2s", "fill": "true"}).json()["data"]
    unfilled = client.get("/v1/bars", params={"symbol": "AAPL", "interval": "2s"}).json()["data"]
    assert filled == unfilled and sum(bar["trades"] for bar in filled) == 5  # no gap between the first and last
    end = to_datetime(T0 + 10_000_000).isoformat()
    gapped = client.get("/v1/bars", params={"symbol": "AAPL", "interval": "1s", "fill": "true", "end": end}).json()
    gapped = gapped["data"]
    assert [bar["trades"] for bar in gapped] == [1] * 5 + [0] * 4  # to `end`: T0 + 6..9 s carry the last close
    assert {bar["close"] for bar in gapped[5:]} == {plain[-1]["close"]}


def test_bars_cut_at_the_row_limit_say_so(api_settings, client):
    whole = client.get("/v1/bars", params={"symbol": "AAPL", "interval": "1s"}).json()
    assert len(whole["data"]) == 5 and "truncated" not in whole["meta"]  # the fixture's five trades, one a second
    small = msgspec.structs.replace(api_settings, query_max_rows=3)
    with TestClient(create_app(small)) as capped:
        capped.headers["X-API-Key"] = KEY
        cut = capped.get("/v1/bars", params={"symbol": "AAPL", "interval": "1s"})
        arrow = capped.get("/v1/bars", params={"symbol": "AAPL", "interval": "1s", "format": "csv"})
    assert [bar["trades"] for bar in cut.json()["data"]] == [1, 1, 1] and cut.json()["meta"]["truncated"] is True
    assert arrow.headers["X-K2-Truncated"] == "true"


def test_bars_latest_asof_gaps_dead_letters(client):
    bars = client.get("/v1/bars", params={"symbol": "AAPL", "interval": "1m"}).json()
    assert bars["exchange"] == "XNAS" and bars["timezone"] == "America/New_York"
    assert [(b["open"], b["close"], b["trades"]) for b in bars["data"]] == [("1.10000000", "1.50000000", 5)]
    latest = client.get("/v1/latest").json()["data"]
    assert latest[0]["trade"]["price"] == "1.50000000" and latest[0]["quote"]["quote_id"] == "q1"
    asof = client.get("/v1/asof", params={"symbol": "AAPL", "tolerance_ms": 1500}).json()["data"]
    assert [row["quote_id"] for row in asof] == ["q1", None, None, None, None]
    dead = client.get("/v1/dead-letters", params={"reason": "malformed_json"}).json()["data"]
    assert len(dead) == 1 and dead[0]["source_offset"] == 5
    assert client.get("/v1/gaps").json()["data"] == []
    snapshots = client.get("/v1/snapshots", params={"table": "trades"}).json()["data"]
    assert snapshots[0]["offsets"]["market.trades/0"] == 6


def test_health_ready_metrics_and_docs_need_no_key(client):
    anonymous = {"X-API-Key": ""}
    assert client.get("/health", headers=anonymous).json() == {"status": "ok", "detail": {}}
    assert client.get("/ready", headers=anonymous).json()["status"] == "ready"
    client.get("/v1/trades")
    metrics = client.get("/metrics", headers=anonymous).text
    assert "k2_api_request_duration_seconds_bucket" in metrics and 'path="/v1/trades"' in metrics
    spec = client.get("/schema/openapi.json", headers=anonymous).json()
    assert "/v1/bars" in spec["paths"] and spec["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"


def test_rate_limit_answers_429_with_retry_after(api_settings):
    settings = load_settings({}, data_dir=api_settings.data_dir, api_keys=KEY, api_rate_limit=3)
    with TestClient(create_app(settings)) as client:
        # Fixed one-second windows: a run of requests may straddle a boundary, so 3 to 6 pass before the first 429.
        codes = []
        while 429 not in codes and len(codes) < 50:
            limited = client.get("/v1/symbols", headers={"X-API-Key": KEY})
            codes.append(limited.status_code)
        assert codes[-1] == 429 and 3 <= codes.index(429) <= 6 and set(codes[:-1]) == {200}
        assert int(limited.headers["retry-after"]) >= 1
        assert client.get("/health").status_code == 200  # not limited


def test_keys_are_kept_hashed_and_a_key_is_made_when_none_is_configured():
    keys = ApiKeys(f"plain, sha256:{digest('hashed')}")
    assert keys.accepts("plain") and keys.accepts("hashed") and not keys.accepts("sha256:" + digest("hashed"))
    generated = ApiKeys("")
    assert generated.generated and generated.accepts(generated.generated) and not generated.accepts("")


def test_bars_vwap_is_rounded_half_even_through_the_api(api_settings):
    run_ingest(api_settings, [raw_batch(vwap_tie_trades(), "market.trades", 0)])
    with TestClient(create_app(api_settings)) as test_client:
        test_client.headers["X-API-Key"] = KEY
        body = test_client.get("/v1/bars", params={"symbol": "AAPL", "interval": "1m", "tz": "UTC"}).json()
    # Hand-derived in tests/fixtures/market.py: 1.000000005 -> 1.00000000, 2.123456785 -> 2.12345678 (half-up would
    # give 1.00000001 and 2.12345679), 1.000000015 -> 1.00000002.
    assert (
        [b["vwap"] for b in body["data"]]
        == [str(v) for v in VWAP_HALF_EVEN]
        == [
            "1.00000000",
            "2.12345678",
            "1.00000002",
        ]
    )
