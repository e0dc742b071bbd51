"""The query engine on real temp-dir Iceberg tables filled by the real flow, checked against hand-computed answers
and against independent DuckDB queries over pyiceberg's own reading of the same snapshot."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, localcontext

import duckdb
import pytest

from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from k2.query import (
    NotFound,
    QueryEngine,
    QueryError,
    Selection,
    bars,
    instruments,
    latest_by_symbol,
    latest_indexes,
    parse_interval,
    parse_time,
    ticks_between,
    trades_with_quotes,
)
from k2.query.params import Cursor
from k2.storage.catalog import open_catalog, read_table
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import T0, VWAP_HALF_EVEN, VWAP_TIES, quote, raw_batch, trade, vwap_tie_trades

SEC = 1_000_000


def engine_for(settings) -> QueryEngine:
    return QueryEngine(open_catalog(settings), settings.namespace, refresh_seconds=0)


def ingest_trades(settings, trades, *, partition=0, start=0, quotes=(), quote_start=0):
    batches = [raw_batch(list(trades), "market.trades", partition, start)]
    if quotes:
        batches.append(raw_batch(list(quotes), "market.quotes", partition, quote_start))
    return run_ingest(settings, batches)


def test_point_query_filters_and_pages_without_gaps_or_repeats(settings):
    feed = SyntheticFeed(FeedConfig(messages=6_000, symbols=6, seed=11, invalid_rate=0, duplicate_rate=0))
    run_ingest(settings, list(feed_batches(feed, 1_000)))
    engine = engine_for(settings)
    everything = read_table(open_catalog(settings).load_table((settings.namespace, "trades")))
    symbol = everything.column("symbol")[0].as_py()
    expected = sorted(
        (r["timestamp"], r["source_partition"], r["source_offset"])
        for r in everything.to_pylist()
        if r["symbol"] == symbol
    )
    seen, cursor = [], None
    while True:
        page = ticks_between(engine, "trades", Selection([symbol]), limit=97, cursor=cursor)
        seen += [(r["timestamp"], r["source_partition"], r["source_offset"]) for r in page.rows.to_pylist()]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    window = ticks_between(engine, "trades", Selection([symbol], start=T0 + 2 * SEC, end=T0 + 3 * SEC), limit=10_000)
    times = [r.value for r in window.rows.column("timestamp")]
    assert times and all(T0 + 2 * SEC <= t < T0 + 3 * SEC for t in times)
    assert times == sorted(times)
    assert (
        window.freshness.snapshot_id
        == open_catalog(settings).load_table((settings.namespace, "trades")).current_snapshot().snapshot_id
    )


def test_cursor_stays_on_its_snapshot_while_data_lands(settings):
    first = [trade(trade_id=f"a{i}", source_sequence=i + 1, timestamp=T0 + i) for i in range(10)]
    ingest_trades(settings, first)
    engine = engine_for(settings)
    page = ticks_between(engine, "trades", limit=4)
    later = [trade(trade_id=f"b{i}", source_sequence=11 + i, timestamp=T0 + 5 + i) for i in range(10)]
    ingest_trades(settings, later, start=10)
    rest, cursor = [], page.next_cursor
    while cursor:
        next_page = ticks_between(engine, "trades", limit=4, cursor=cursor)
        assert next_page.freshness.snapshot_id == page.freshness.snapshot_id
        rest += next_page.rows.column("trade_id").to_pylist()
        cursor = next_page.next_cursor
    assert page.rows.column("trade_id").to_pylist() + rest == [f"a{i}" for i in range(10)]
    # A fresh walk sees the new snapshot with all 20 rows.
    assert ticks_between(engine, "trades", limit=100).rows.num_rows == 20


def test_metadata_is_refreshed_ahead_in_the_background_and_never_staler_than_the_bound(settings):
    ingest_trades(settings, [trade(trade_id="a0", source_sequence=1, timestamp=T0)])
    now = [0.0]
    engine = QueryEngine(open_catalog(settings), settings.namespace, refresh_seconds=1.0, clock=lambda: now[0])

    def snapshot() -> int | None:
        return ticks_between(engine, "trades", limit=10).freshness.snapshot_id

    def refreshed() -> None:
        engine._refresher.submit(lambda: None).result()  # one worker: every refresh asked for is done

    first = snapshot()
    ingest_trades(settings, [trade(trade_id="a1", source_sequence=2, timestamp=T0 + 1)], start=1)
    now[0] = 0.4  # young metadata: served as is, nothing re-read
    assert snapshot() == first and not engine._refreshing
    now[0] = 0.6  # past half the bound: still served, and re-read behind the query's back
    assert snapshot() == first
    refreshed()
    second = snapshot()
    assert second != first
    assert ticks_between(engine, "trades", limit=10).rows.num_rows == 2
    ingest_trades(settings, [trade(trade_id="a2", source_sequence=3, timestamp=T0 + 2)], start=2)
    now[0] = 1.7  # past the bound (read at 0.6): the query reads the catalog itself, never serves older
    assert snapshot() not in (first, second)
    engine.close()


def test_time_travel_returns_the_older_rows(settings):
    ingest_trades(settings, [trade(trade_id="old", source_sequence=1)])
    engine = engine_for(settings)
    old = ticks_between(engine, "trades").freshness
    ingest_trades(settings, [trade(trade_id="new", source_sequence=2, timestamp=T0 + 1)], start=1)
    assert ticks_between(engine, "trades").rows.column("trade_id").to_pylist() == ["old", "new"]
    pinned = ticks_between(engine, "trades", Selection(snapshot_id=old.snapshot_id))
    assert pinned.rows.column("trade_id").to_pylist() == ["old"]
    at_time = ticks_between(engine, "trades", Selection(as_of=int(old.committed_at.timestamp() * 1_000_000) + 999))
    assert at_time.rows.column("trade_id").to_pylist() == ["old"]
    with pytest.raises(NotFound, match=r"^no snapshot 12345 in trades"):
        ticks_between(engine, "trades", Selection(snapshot_id=12345))


def test_bars_hand_computed_with_same_microsecond_ties(settings):
    # Three trades share one microsecond: open/close follow the sequence, not the arrival order in the file.
    trades = [
        trade(trade_id="1", source_sequence=2, timestamp=T0, price="10.00", quantity="1"),
        trade(trade_id="2", source_sequence=1, timestamp=T0, price="11.00", quantity="2"),
        trade(trade_id="3", source_sequence=3, timestamp=T0, price="9.00", quantity="3"),
        trade(trade_id="4", source_sequence=4, timestamp=T0 + 30 * SEC, price="10.50", quantity="4"),
        trade(trade_id="5", source_sequence=5, timestamp=T0 + 61 * SEC, price="0.1", quantity="0.2"),
    ]
    ingest_trades(settings, trades)
    engine = engine_for(settings)
    page = bars(engine, Selection(["AAPL"], "XNAS"), parse_interval("1m"), "UTC")
    rows = page.rows.to_pylist()
    assert [r["trades"] for r in rows] == [4, 1]
    first = rows[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        Decimal("11.00"),
        Decimal("11.00"),
        Decimal("9.00"),
        Decimal("10.50"),
    )
    assert first["volume"] == Decimal(10)
    # (10*1 + 11*2 + 9*3 + 10.5*4) / 10 = 10.1 exactly
    assert first["vwap"] == Decimal("10.10000000")
    assert rows[1]["vwap"] == Decimal("0.10000000") and rows[1]["volume"] == Decimal("0.2")
    assert rows[0]["start"] == datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def exact_vwaps(rounding: str) -> list[Decimal]:
    """The oracle, from the test's own fills: sum(p*q)/sum(q) in exact decimals, rounded to 8 places."""
    answers = []
    with localcontext(Context(prec=50)):
        for fills in VWAP_TIES:
            notional = sum(Decimal(p) * Decimal(q) for p, q in fills)
            volume = sum(Decimal(q) for _, q in fills)
            answers.append((notional / volume).quantize(Decimal("1e-8"), rounding=rounding))
    return answers


def test_vwap_rounds_half_even_on_exact_ties(settings):
    expected = exact_vwaps(ROUND_HALF_EVEN)
    assert expected == VWAP_HALF_EVEN
    # The cases discriminate: half-up differs on the first two, rounding down on the third.
    half_up, down = exact_vwaps(ROUND_HALF_UP), exact_vwaps(ROUND_DOWN)
    assert half_up[:2] == [Decimal("1.00000001"), Decimal("2.12345679")] and half_up[:2] != expected[:2]
    assert down[2] == Decimal("1.00000001") != expected[2]
    ingest_trades(settings, vwap_tie_trades())
    rows = bars(engine_for(settings), Selection(["AAPL"], "XNAS"), parse_interval("1m"), "UTC").rows.to_pylist()
    assert [r["trades"] for r in rows] == [len(fills) for fills in VWAP_TIES]
    assert [r["vwap"] for r in rows] == expected


def test_filled_bars_carry_the_previous_close(settings):
    trades = [
        trade(trade_id="1", source_sequence=1, timestamp=T0 - 5 * 60 * SEC, price="7"),
        trade(trade_id="2", source_sequence=2, timestamp=T0 + 2 * 60 * SEC + 5, price="8"),
    ]
    ingest_trades(settings, trades)
    rows = bars(
        engine_for(settings), Selection(["AAPL"], "XNAS", T0, T0 + 4 * 60 * SEC), parse_interval("1m"), "UTC", fill=True
    ).rows.to_pylist()
    assert [(r["open"], r["close"], r["volume"], r["trades"]) for r in rows] == [
        (Decimal(7), Decimal(7), 0, 0),  # before the first trade in range: the close before `start`
        (Decimal(7), Decimal(7), 0, 0),
        (Decimal(8), Decimal(8), Decimal(100), 1),
        (Decimal(8), Decimal(8), 0, 0),
    ]
    assert rows[0]["vwap"] is None and rows[2]["vwap"] == Decimal(8)


def test_daily_bars_follow_the_exchange_day_not_utc(settings):
    # Sydney in March 2014 is UTC+11: 2014-03-10 13:00 UTC is midnight starting 11 March in Sydney.
    def at(text):
        return parse_time(text)

    trades = [
        trade(exchange="ASX", symbol="MWR", currency="AUD", trade_id="a", source_sequence=1,
              timestamp=at("2014-03-10T12:59:59.999999Z"), price="1.00"),
        trade(exchange="ASX", symbol="MWR", currency="AUD", trade_id="b", source_sequence=2,
              timestamp=at("2014-03-10T13:00:00Z"), price="2.00"),
        trade(exchange="ASX", symbol="MWR", currency="AUD", trade_id="c", source_sequence=3,
              timestamp=at("2014-03-11T05:00:00Z"), price="3.00"),
    ]  # fmt: skip
    ingest_trades(settings, trades)
    engine = engine_for(settings)
    rows = bars(engine, Selection(["MWR"], "ASX"), parse_interval("1d"), "Australia/Sydney").rows.to_pylist()
    assert [(r["start"], r["open"], r["close"], r["trades"]) for r in rows] == [
        (datetime(2014, 3, 9, 13, tzinfo=UTC), Decimal(1), Decimal(1), 1),  # Sydney 10 March 00:00
        (datetime(2014, 3, 10, 13, tzinfo=UTC), Decimal(2), Decimal(3), 2),  # Sydney 11 March 00:00
    ]
    utc = bars(engine, Selection(["MWR"], "ASX"), parse_interval("1d"), "UTC").rows.to_pylist()
    assert [r["trades"] for r in utc] == [2, 1]


def test_bars_equal_an_independent_duckdb_query(settings):
    feed = SyntheticFeed(FeedConfig(messages=8_000, symbols=4, seed=5))
    run_ingest(settings, list(feed_batches(feed, 1_000)))
    engine = engine_for(settings)
    table = open_catalog(settings).load_table((settings.namespace, "trades"))
    data = table.scan().to_arrow()  # pyiceberg's own reader, not our planner
    symbol, exchange = data.column("symbol")[0].as_py(), data.column("exchange")[0].as_py()
    ours = bars(engine, Selection([symbol], exchange), parse_interval("5s"), "UTC").rows
    reference = duckdb.connect()
    reference.execute("SET TimeZone = 'UTC'")
    reference.register("ticks", data)
    expected = reference.execute(
        """
        WITH ranked AS (
            SELECT epoch_us("timestamp") // 5000000 AS b, price, quantity,
                   row_number() OVER (PARTITION BY epoch_us("timestamp") // 5000000
                                      ORDER BY "timestamp", source_sequence, source_partition, source_offset)
                       AS first_rank,
                   row_number() OVER (PARTITION BY epoch_us("timestamp") // 5000000
                                      ORDER BY "timestamp" DESC, source_sequence DESC, source_partition DESC,
                                               source_offset DESC) AS last_rank
            FROM ticks WHERE symbol = $s AND exchange = $e
        )
        SELECT b, max(CASE WHEN first_rank = 1 THEN price END), max(price), min(price),
               max(CASE WHEN last_rank = 1 THEN price END), sum(quantity), count(*),
               sum(price::DECIMAL(38, 8) * quantity::DECIMAL(38, 8)) AS notional
        FROM ranked GROUP BY b ORDER BY b
        """,
        {"s": symbol, "e": exchange},
    ).fetchall()
    got = ours.to_pylist()
    assert len(got) == len(expected) > 1
    for row, (bucket, o, h, lo, c, v, n, notional) in zip(got, expected, strict=True):
        assert int(row["start"].timestamp()) == bucket * 5
        assert (row["open"], row["high"], row["low"], row["close"], row["volume"], row["trades"]) == (o, h, lo, c, v, n)
        with localcontext(Context(prec=60)):  # exact: DuckDB's notional over the volume, rounded half-even
            assert row["vwap"] == (notional / v).quantize(Decimal("1e-8"), rounding=ROUND_HALF_EVEN)


def test_latest_folds_new_commits_and_matches_a_full_scan(settings):
    ingest_trades(
        settings,
        [
            trade(trade_id="1", source_sequence=1, timestamp=T0, price="1"),
            trade(symbol="MSFT", trade_id="m", source_sequence=1, timestamp=T0, price="5"),
        ],
    )
    engine, indexes = engine_for(settings), latest_indexes()
    rows, _ = latest_by_symbol(engine, indexes)
    assert {r["symbol"]: r["trade"]["price"] for r in rows.to_pylist()} == {"AAPL": Decimal(1), "MSFT": Decimal(5)}
    # Two trades in one microsecond: the higher sequence is the latest.
    ingest_trades(
        settings,
        [
            trade(trade_id="3", source_sequence=3, timestamp=T0 + 9, price="3"),
            trade(trade_id="2", source_sequence=2, timestamp=T0 + 9, price="2"),
        ],
        start=2,
    )
    rows, freshness = latest_by_symbol(engine, indexes, symbols=["AAPL"])
    (aapl,) = rows.to_pylist()
    assert aapl["trade"]["price"] == Decimal(3) and aapl["quote"] is None
    assert freshness["trades"].snapshot_id is not None
    fresh_rows, _ = latest_by_symbol(engine, latest_indexes(), symbols=["AAPL"])
    assert fresh_rows.to_pylist() == rows.to_pylist()
    listed = {r["symbol"]: r["trades"] for r in instruments(engine, indexes).to_pylist()}
    assert listed == {"AAPL": 3, "MSFT": 1}


def test_latest_after_an_overwrite_is_recomputed(settings):
    ingest_trades(
        settings,
        [trade(trade_id=str(i), source_sequence=i, timestamp=T0 + i, price=str(i)) for i in range(1, 5)],
    )
    engine, indexes = engine_for(settings), latest_indexes()
    assert latest_by_symbol(engine, indexes)[0].to_pylist()[0]["trade"]["price"] == Decimal(4)
    table = open_catalog(settings).load_table((settings.namespace, "trades"))
    table.delete("trade_id == '4'")  # copy-on-write: files are replaced, not appended
    (row,) = latest_by_symbol(engine, indexes)[0].to_pylist()
    assert row["trade"]["price"] == Decimal(3)
    assert ticks_between(engine, "trades").rows.num_rows == 3


def test_asof_join_takes_the_prevailing_quote_within_tolerance(settings):
    quotes = [
        quote(quote_id="q1", source_sequence=1, timestamp=T0, bid_price="10.00", ask_price="10.02"),
        quote(quote_id="q2", source_sequence=2, timestamp=T0 + 5, bid_price="10.01", ask_price="10.03"),
        quote(quote_id="q3", source_sequence=3, timestamp=T0 + 5, bid_price="10.01", ask_price="10.04"),
        quote(quote_id="q4", source_sequence=4, timestamp=T0 + 10 * SEC, bid_price="0", ask_price="10.09"),
    ]
    trades = [
        trade(trade_id="before", source_sequence=1, timestamp=T0 - 1),
        trade(trade_id="same_us", source_sequence=2, timestamp=T0 + 5),
        trade(trade_id="stale", source_sequence=3, timestamp=T0 + 3 * SEC),
        trade(trade_id="one_sided", source_sequence=4, timestamp=T0 + 10 * SEC + 1),
    ]
    ingest_trades(settings, trades, quotes=quotes)
    page, _ = trades_with_quotes(engine_for(settings), Selection(["AAPL"]), tolerance_us=2 * SEC)
    # `start` bounds the trades; only the quotes are read from a tolerance earlier
    ranged, _ = trades_with_quotes(
        engine_for(settings), Selection(["AAPL"], start=T0 + SEC, end=T0 + 11 * SEC), tolerance_us=2 * SEC
    )
    assert ranged.rows.column("trade_id").to_pylist() == ["stale", "one_sided"]
    got = {r["trade_id"]: r for r in page.rows.to_pylist()}
    assert got["before"]["quote_id"] is None
    assert got["same_us"]["quote_id"] == "q3"  # same microsecond: later in the feed wins
    assert got["same_us"]["spread"] == Decimal("0.03") and got["same_us"]["mid"] == Decimal("10.025")
    assert got["stale"]["quote_id"] is None  # 3 s old > 2 s tolerance
    assert got["one_sided"]["quote_id"] == "q4" and got["one_sided"]["bid_price"] is None
    assert got["one_sided"]["spread"] is None


def test_empty_warehouse_answers_empty(settings):
    engine = engine_for(settings)
    page = ticks_between(engine, "trades")
    assert page.rows.num_rows == 0 and page.freshness.snapshot_id is None
    assert latest_by_symbol(engine, latest_indexes())[0].num_rows == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2014-03-10T23:00:00Z", 1_394_492_400_000_000),
        ("2014-03-11T10:00:00+11:00", 1_394_492_400_000_000),
        ("2014-03-10T23:00:00", 1_394_492_400_000_000),
        ("2014-03-10", 1_394_409_600_000_000),
        ("1394492400000000", 1_394_492_400_000_000),
    ],
)
def test_times_parse_to_utc_micros(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2014-13-01", "99999999999999999999999"])
def test_bad_times_are_query_errors(text):
    with pytest.raises(QueryError):
        parse_time(text)


def test_intervals_and_cursors_reject_garbage():
    assert parse_interval("5m").sql == "5 minutes" and parse_interval("1mo").calendar
    for bad in ("0s", "5x", "m", "400d"):
        with pytest.raises(QueryError):
            parse_interval(bad)
    with pytest.raises(QueryError):
        Cursor.decode("not-a-cursor")  # not of the encoder's form: malformed
    with pytest.raises(NotFound):
        Cursor.decode("lQAAAAAA")  # of its form, naming no page
    cursor = Cursor(1, 2, "t", 3, 4)
    assert Cursor.decode(cursor.encode()) == cursor
