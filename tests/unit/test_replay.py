"""Replay from Iceberg on real temp-dir tables filled by the real flow: the rows of a range in order, identical
across replays, pinned to snapshots, wire messages that re-ingest to the same rows, pacing, and `/v1/replay`."""

from __future__ import annotations

import time
from decimal import Decimal

import msgspec
import pyarrow as pa
import pytest
from litestar.testing import TestClient

from api.app import create_app
from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from k2.model.schemas import Quote, Trade
from k2.ops.config import load_settings
from k2.query import NotFound, QueryEngine, QueryError
from k2.query.engine import to_micros
from k2.replay import (
    REPLAY_SCHEMA,
    Message,
    Pacer,
    QuoteWire,
    Replay,
    TradeWire,
    _Density,
    arrow_stream,
    chunk_messages,
    ndjson_stream,
    paced,
    parse_kinds,
    wire_values,
)
from k2.storage.catalog import open_catalog, read_table
from tests.fixtures.clock import FakeClock
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import BUSINESS, T0, quote, raw_batch, trade

KEY = "test-key"
SEC = 1_000_000


def engine_for(settings) -> QueryEngine:
    return QueryEngine(open_catalog(settings), settings.namespace, refresh_seconds=0)


def special_messages():
    """Edge cases of the wire model: unsequenced, vendor data, message id, a tiny decimal, one-sided quotes."""
    trades = [
        trade(trade_id="v1", symbol="ZZV", source_sequence=None, vendor_data={"venue": "x"}, message_id="m-1",
              quantity="0.00000001", timestamp=T0 + 5 * SEC, trade_conditions=[]),
        trade(trade_id="v2", symbol="ZZV", source_sequence=None, timestamp=T0 + 5 * SEC, price="0.00000002"),
    ]  # fmt: skip
    quotes = [
        quote(quote_id="o1", symbol="ZZV", bid_price=None, bid_quantity=None, timestamp=T0 + 5 * SEC),
        quote(quote_id="o2", symbol="ZZV", source_sequence=2, ask_price="0", ask_quantity="5", timestamp=T0 + 6 * SEC),
    ]
    return [raw_batch(trades, "market.trades", 7), raw_batch(quotes, "market.quotes", 7)]


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    settings = load_settings({}, data_dir=str(tmp_path_factory.mktemp("replay") / "k2"), epoch_seconds=0.02,
                             api_keys=KEY, query_refresh_seconds=0)  # fmt: skip
    feed = SyntheticFeed(FeedConfig(messages=4_000, symbols=8, seed=5, mean_interval_us=3_000))
    run_ingest(settings, list(feed_batches(feed, 500)) + special_messages(), epoch=0.02)
    catalog = open_catalog(settings)
    tables = {name: read_table(catalog.load_table((settings.namespace, name))) for name in ("trades", "quotes")}
    return settings, tables


def expected_rows(tables, start=None, end=None, symbols=None, kinds=("trade", "quote")):
    rows = []
    for kind, name in (("trade", "trades"), ("quote", "quotes")):
        if kind not in kinds:
            continue
        for row in tables[name].to_pylist():
            us = to_micros(row["timestamp"])
            if (
                (start is None or us >= start)
                and (end is None or us < end)
                and (not symbols or row["symbol"] in symbols)
            ):
                rows.append({**row, "kind": kind, "_us": us})
    seq = lambda r: -1 if r["source_sequence"] is None else r["source_sequence"]  # noqa: E731
    rows.sort(key=lambda r: (r["_us"], seq(r), r["kind"], r["exchange"], r["symbol"], r["source_topic"],
                             r["source_partition"], r["source_offset"]))  # fmt: skip
    return rows


def replayed_rows(replay: Replay) -> list[dict]:
    return [row for chunk in replay.chunks() for row in chunk.to_pylist()]


def same(replayed: list[dict], expected: list[dict]) -> None:
    assert len(replayed) == len(expected)
    position = ("kind", "source_topic", "source_partition", "source_offset")
    assert [tuple(r[c] for c in position) for r in replayed] == [tuple(r[c] for c in position) for r in expected]
    for got, want in zip(replayed, expected, strict=True):
        for column in BUSINESS["trades" if want["kind"] == "trade" else "quotes"]:
            value = got[column]
            if column == "vendor_data" and value is not None:
                value = list(value)
            assert value == want[column], column


@pytest.mark.parametrize("chunk_rows", [50_000, 97, 7])
def test_replay_of_a_range_equals_the_iceberg_rows_in_order(landed, chunk_rows):
    settings, tables = landed
    start, end = T0 + 2 * SEC, T0 + 9 * SEC
    replay = Replay(engine_for(settings), start=start, end=end, chunk_rows=chunk_rows)
    chunks = list(replay.chunks())
    assert all(0 < c.num_rows <= chunk_rows for c in chunks) and all(c.schema == REPLAY_SCHEMA for c in chunks)
    expected = expected_rows(tables, start, end)
    assert len(expected) > 1_000
    same([row for c in chunks for row in c.to_pylist()], expected)
    assert replay.count() == len(expected) <= replay.planned_rows()


def test_symbols_kinds_and_the_whole_table(landed):
    settings, tables = landed
    engine = engine_for(settings)
    symbols = sorted({r["symbol"] for r in tables["trades"].to_pylist()})[:2]
    replay = Replay(engine, symbols=symbols, kinds="trade", chunk_rows=50)
    same(replayed_rows(replay), expected_rows(tables, symbols=symbols, kinds=("trade",)))
    everything = Replay(engine, chunk_rows=1_000)
    same(replayed_rows(everything), expected_rows(tables))
    assert everything.count() == tables["trades"].num_rows + tables["quotes"].num_rows


def test_two_replays_produce_identical_streams(landed):
    settings, _ = landed
    first = list(Replay(engine_for(settings), start=T0, end=T0 + 8 * SEC, chunk_rows=300).messages())
    second = list(Replay(engine_for(settings), start=T0, end=T0 + 8 * SEC, chunk_rows=5_000).messages())
    assert first == second and len(first) > 1_000
    assert b"".join(ndjson_stream(Replay(engine_for(settings), start=T0, end=T0 + 8 * SEC))) == b"".join(
        m.value + b"\n" for m in first
    )


def test_wire_messages_decode_as_the_wire_schema_and_keep_every_field(landed):
    settings, _ = landed
    messages = list(Replay(engine_for(settings), symbols=["ZZV"]).messages())
    assert [m.kind for m in messages] == ["trade", "trade", "quote", "quote"]  # unsequenced first at equal times
    assert {m.key for m in messages} == {b"XNAS:ZZV"}
    trade1, trade2, quote1, quote2 = (msgspec.json.decode(m.value) for m in messages)
    assert trade1["quantity"] == "0.00000001" and trade2["price"] == "0.00000002"  # plain digits, exact
    assert trade1["vendor_data"] == {"venue": "x"} and trade1["message_id"] == "m-1"
    assert trade1["source_sequence"] is None and trade1["trade_conditions"] == []
    assert trade1["timestamp"] == T0 + 5 * SEC and trade1["ingestion_timestamp"] == T0 + 500
    assert quote1["bid_price"] is None and quote1["bid_quantity"] is None and quote1["one_sided"] is True
    assert quote2["ask_price"] is None and quote2["ask_quantity"] is None  # a zero side was stored as null
    assert list(trade1) == list(Trade.__struct_fields__) and list(quote1) == list(Quote.__struct_fields__)
    assert TradeWire.__struct_fields__ == Trade.__struct_fields__
    assert QuoteWire.__struct_fields__ == Quote.__struct_fields__
    decoded = msgspec.json.decode(messages[0].value, type=Trade)
    assert decoded.quantity == Decimal("1E-8") and decoded.side == "BUY"


def test_replayed_messages_reingest_to_identical_tables(landed, tmp_path):
    settings, tables = landed
    messages = list(Replay(engine_for(settings)).messages())
    again = load_settings({}, data_dir=str(tmp_path / "again"), epoch_seconds=0.02)
    batches = [
        raw_batch([m.value for m in messages if m.kind == kind], f"replay.{kind}s", 0) for kind in ("trade", "quote")
    ]
    landed_again = run_ingest(again, batches)
    for name, columns in BUSINESS.items():

        def rows(table, columns=columns):
            return sorted(msgspec.json.encode(r) for r in table.select(columns).to_pylist())

        assert rows(landed_again.tables[name]) == rows(tables[name]), name
    assert landed_again.tables["dead_letters"].num_rows == 0


def test_a_replay_stays_on_its_snapshots_while_data_lands(tmp_path):
    settings = load_settings({}, data_dir=str(tmp_path / "k2"), epoch_seconds=0.02)
    first = [trade(trade_id=str(i), source_sequence=i, timestamp=T0 + i * SEC) for i in range(1, 6)]
    run_ingest(settings, [raw_batch(first, "market.trades", 0)])
    engine = engine_for(settings)
    pinned = Replay(engine, kinds="trade,quote")
    assert pinned.count() == 5 and set(pinned.snapshot_ids) == {"trades", "quotes"}
    committed_first = pinned.plans["trade"][1].committed_at_ms
    time.sleep(0.01)
    more = [trade(trade_id=str(i), source_sequence=i, timestamp=T0 + i * SEC) for i in range(6, 9)]
    run_ingest(settings, [raw_batch(more, "market.trades", 0, start=5), raw_batch([quote()], "market.quotes", 0)])
    assert [m.timestamp for m in pinned.messages()] == [T0 + i * SEC for i in range(1, 6)]
    assert len(list(Replay(engine).messages())) == 9
    as_of = Replay(engine, as_of=committed_first * 1000 + 999, kinds="trade")
    assert len(list(as_of.messages())) == 5
    with pytest.raises(NotFound, match=r"^no snapshot of trades at or before"):
        Replay(engine, as_of=T0, kinds="trade")  # before the first snapshot
    assert Replay(engine, start=T0, end=T0 + SEC + 1, kinds="trade").count() == 1  # trade 1, at T0 + 1 s
    empty = Replay(engine, start=T0 + SEC + 1, end=T0, kinds="trade")  # the same bounds swapped: an empty interval
    assert empty.count() == 0 and list(empty.messages()) == []
    with pytest.raises(QueryError):
        parse_kinds("trade,bars")


def test_slices_follow_the_planned_density():
    density = _Density([(0, 100, 100), (50, 150, 1_000)], 0, 200)
    assert density.at(0) == 0 and density.at(200) == pytest.approx(1_100)
    assert density.at(50) == pytest.approx(50)
    assert density.time_at(50) == 50 and density.time_at(10_000) == 200
    assert density.at(density.time_at(600)) == pytest.approx(600, abs=11)


def test_pacer_schedule_keeps_inter_arrival_times_over_speed():
    clock = FakeClock(100.0)
    pacer = Pacer(2.0, clock=clock, sleep=clock.sleep)
    sent = []
    for event_us in [0, 1_000_000, 1_000_000, 1_500_000, 4_000_000]:
        pacer.wait(event_us)
        sent.append(clock.now - 100.0)
        clock.now += 0.1  # the work of sending: absorbed by the absolute schedule, never accumulated
    assert sent == pytest.approx([0.0, 0.5, 0.6, 0.75, 2.0])
    assert clock.sleeps == pytest.approx([0.4, 0.05, 1.15])
    free = Pacer(None, clock=clock, sleep=clock.sleep)
    before = len(clock.sleeps)
    for event_us in (0, 10**9):
        free.wait(event_us)
    assert len(clock.sleeps) == before
    with pytest.raises(QueryError):
        Pacer(0)


def test_paced_groups_hold_only_due_messages():
    clock = FakeClock(100.0)
    pacer = Pacer(1.0, clock=clock, sleep=clock.sleep)
    messages = [Message("trade", t, b"k", b"v") for t in (0, 0, 200_000, 200_000, 200_001, 1_000_000)]
    groups = [([m.timestamp for m in group], clock.now - 100.0) for group in paced(messages, pacer)]
    assert [g for g, _ in groups] == [[0, 0], [200_000, 200_000], [200_001], [1_000_000]]
    assert [at for _, at in groups] == pytest.approx([0.0, 0.2, 0.200001, 1.0])  # each when its first is due


def test_measured_pacing_is_within_tolerance(tmp_path):
    settings = load_settings({}, data_dir=str(tmp_path / "k2"), epoch_seconds=0.02)
    step = 100_000  # event times 100 ms apart, 1 s in all
    trades = [trade(trade_id=str(i), source_sequence=i + 1, timestamp=T0 + i * step) for i in range(11)]
    run_ingest(settings, [raw_batch(trades, "market.trades", 0)])
    replay = Replay(engine_for(settings), kinds="trade")
    speed = 4.0
    pacer = Pacer(speed)
    arrivals = []
    started = None
    for block in ndjson_stream(replay, pacer):
        now = time.monotonic()
        started = now if started is None else started
        arrivals += [now - started] * block.count(b"\n")
    expected = [i * step / 1e6 / speed for i in range(11)]
    lateness = [got - want for got, want in zip(arrivals, expected, strict=True)]
    assert len(arrivals) == 11
    assert min(lateness) > -0.005  # never early
    assert sorted(lateness)[5] < 0.05  # median within 50 ms on a shared machine
    assert arrivals[-1] == pytest.approx(0.25, abs=0.15)


def test_duckdb_wire_messages_equal_the_msgspec_encoding_byte_for_byte(landed):
    settings, _ = landed
    replay = Replay(engine_for(settings), chunk_rows=1_500)
    from_duckdb = list(replay.messages())
    from_rows = [m for chunk in replay.chunks() for m in chunk_messages(chunk)]
    assert from_duckdb == from_rows and len(from_rows) > 3_000


def test_wire_values_keep_chunk_order_with_mixed_kinds():
    chunk = pa.Table.from_pylist(
        [
            {
                "kind": "trade",
                "exchange": "X",
                "symbol": "A",
                "asset_class": "fx",
                "timestamp": 1,
                "currency": "USD",
                "trade_id": "t",
                "price": Decimal("1.5"),
                "quantity": Decimal("2"),
                "side": "BUY",
                "trade_conditions": None,
                "source_topic": "t",
                "source_partition": 0,
                "source_offset": 0,
            },
            {
                "kind": "quote",
                "exchange": "X",
                "symbol": "A",
                "asset_class": "fx",
                "timestamp": 2,
                "currency": "USD",
                "quote_id": "q",
                "ask_price": Decimal("3"),
                "ask_quantity": Decimal("1"),
                "one_sided": True,
                "crossed": False,
                "source_topic": "q",
                "source_partition": 0,
                "source_offset": 0,
            },
        ],
        schema=REPLAY_SCHEMA,
    )
    first, second = (msgspec.json.decode(v) for v in wire_values(chunk))
    assert first["trade_id"] == "t" and first["price"] == "1.50000000" and first["trade_conditions"] == []
    assert second["quote_id"] == "q" and second["bid_price"] is None and second["timestamp"] == 2


# --- the HTTP route ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(landed):
    settings, _ = landed
    with TestClient(create_app(settings)) as test_client:
        test_client.headers["X-API-Key"] = KEY
        yield test_client


def test_http_ndjson_lines_are_the_replayed_messages(client, landed):
    settings, _ = landed
    params = {"start": str(T0 + SEC), "end": "2026-01-05T14:30:06Z", "kinds": "trade,quote"}
    response = client.get("/v1/replay", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["x-k2-trades-snapshot-id"] and response.headers["x-k2-quotes-snapshot-id"]
    lines = response.content.splitlines()
    expected = [m.value for m in Replay(engine_for(settings), start=T0 + SEC, end=T0 + 6 * SEC).messages()]
    assert lines == expected and len(lines) > 500
    symbol = msgspec.json.decode(lines[0])["symbol"]
    only = client.get("/v1/replay", params={**params, "symbol": symbol, "kinds": "quote"}).content.splitlines()
    assert only and all(msgspec.json.decode(line)["symbol"] == symbol for line in only)
    assert all("quote_id" in msgspec.json.decode(line) for line in only)


def test_http_arrow_stream_is_readable(client, landed):
    _, tables = landed
    response = client.get("/v1/replay", params={"format": "arrow", "end": str(T0 + 4 * SEC)})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.apache.arrow.stream")
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.schema == REPLAY_SCHEMA and table.column("price").type == pa.decimal128(18, 8)
    same(table.to_pylist(), expected_rows(tables, end=T0 + 4 * SEC))
    empty = client.get("/v1/replay", params={"format": "arrow", "start": "2030-01-01"})
    assert pa.ipc.open_stream(empty.content).read_all().num_rows == 0


def test_http_paced_replay(client):
    started = time.monotonic()
    response = client.get("/v1/replay", params={"symbol": "ZZV", "speed": "4"})  # 1 s of events at 4x
    elapsed = time.monotonic() - started
    assert response.status_code == 200 and len(response.content.splitlines()) == 4
    assert 0.24 <= elapsed < 5
    arrow = client.get("/v1/replay", params={"symbol": "ZZV", "speed": "1000", "format": "arrow"})
    assert pa.ipc.open_stream(arrow.content).read_all().num_rows == 4


def test_http_needs_a_key(client):
    assert client.get("/v1/replay", headers={"X-API-Key": ""}).status_code == 401
    assert client.get("/v1/replay", headers={"X-API-Key": "wrong"}).status_code == 403


@pytest.mark.parametrize("query", ["kinds=bars", "speed=0", "speed=-1", "speed=abc", "format=csv", "start=yesterday"])
def test_http_bad_parameters_are_400_problems(client, query):
    response = client.get(f"/v1/replay?{query}")
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]


def test_arrow_stream_paced_writes_batches_as_rows_fall_due(landed):
    settings, _ = landed
    clock = FakeClock(100.0)
    pacer = Pacer(1_000.0, clock=clock, sleep=clock.sleep)
    replay = Replay(engine_for(settings), start=T0, end=T0 + 2 * SEC)
    data = b"".join(arrow_stream(replay, pacer))
    assert pa.ipc.open_stream(data).read_all().num_rows == replay.count()
    assert clock.now - 100.0 == pytest.approx(
        (replayed_rows(replay)[-1]["timestamp"].timestamp() - replayed_rows(replay)[0]["timestamp"].timestamp()) / 1e3
    )
