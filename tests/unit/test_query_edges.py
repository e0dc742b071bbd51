"""Requests at the edges of the data, answered rather than refused: an empty interval holds no rows, gap-filled bars
without a range fill over the trades found, and what names nothing (a snapshot, a time before the first one, a
cursor's page) or needs what the service lacks (a Kafka tail) is told apart from a malformed request."""

from __future__ import annotations

from decimal import Decimal

import pytest

from k2.query import Conflict, NotFound, QueryEngine, QueryError, Selection, bars, parse_interval, ticks_between
from k2.query.params import MAX_US, MIN_US, Cursor, time_range
from k2.storage.catalog import open_catalog
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import T0, raw_batch, trade

SEC, MIN = 1_000_000, 60_000_000
# Trades at minutes 0, 2 and 4 after T0 (minutes 1 and 3 hold none), prices 7, 8, 9.
TIMES_PRICES = [(T0 + 5 * SEC, 7), (T0 + 2 * MIN + 5, 8), (T0 + 4 * MIN + 1, 9)]


@pytest.fixture
def engine(settings):
    trades = [
        trade(trade_id=str(i), source_sequence=i, timestamp=ts, price=str(price))
        for i, (ts, price) in enumerate(TIMES_PRICES, 1)
    ]
    run_ingest(settings, [raw_batch(trades, "market.trades", 0)])
    engine = QueryEngine(open_catalog(settings), settings.namespace, refresh_seconds=0)
    yield engine
    engine.close()


def filled(first_minute: int, last_minute: int, seed: int | None = None) -> list[tuple]:
    """The oracle from TIMES_PRICES: one bar per minute; a minute without trades carries the previous close."""
    expected, previous = [], seed
    for minute in range(first_minute, last_minute + 1):
        prices = [p for ts, p in TIMES_PRICES if (ts - T0) // MIN == minute]
        if prices:
            expected.append((T0 + minute * MIN, prices[0], prices[-1], 100 * len(prices), len(prices)))
            previous = prices[-1]
        elif previous is not None:
            expected.append((T0 + minute * MIN, previous, previous, 0, 0))
    return [(start, Decimal(o), Decimal(c), volume, n) for start, o, c, volume, n in expected]


def minute_bars(engine, **window) -> list[tuple]:
    rows = bars(engine, Selection(["AAPL"], "XNAS", **window), parse_interval("1m"), "UTC", fill=True).rows.to_pylist()
    return [(int(r["start"].timestamp()) * SEC, r["open"], r["close"], r["volume"], r["trades"]) for r in rows]


def test_filled_bars_without_a_range_span_the_trades_found(engine):
    assert minute_bars(engine) == filled(0, 4)  # first bar to last bar, minutes 1 and 3 carried
    assert minute_bars(engine, start=T0 + MIN) == filled(1, 4, seed=7)  # leading minute: the close before start
    assert minute_bars(engine, end=T0 + 3 * MIN) == filled(0, 2)
    assert minute_bars(engine, start=T0 + 5 * MIN) == []  # no trade after start: nothing to fill


def test_a_range_of_more_bars_than_a_request_returns_answers_the_first(engine, settings):
    # ~5e9 minutes asked: not filled, the bars are only where trades are; filled, the first max_rows of them.
    plain = bars(engine, Selection(["AAPL"], "XNAS", MIN_US, MAX_US), parse_interval("1s"), "UTC").rows
    assert plain.column("trades").to_pylist() == [1, 1, 1]
    small = QueryEngine(open_catalog(settings), settings.namespace, refresh_seconds=0, max_rows=7)
    assert minute_bars(small, start=MIN_US, end=MAX_US) == filled(0, 6)  # the last close carried towards `end`
    small.max_rows = 2
    assert minute_bars(small, start=MIN_US, end=MAX_US) == minute_bars(small) == filled(0, 1)
    small.close()


def test_an_empty_interval_holds_no_rows(engine):
    assert time_range("2026-01-05T14:33:00Z", "2026-01-05T14:31:00Z") == (T0 + 3 * MIN, T0 + MIN)
    everything = ticks_between(engine, "trades").rows.num_rows
    assert everything == len(TIMES_PRICES)
    for start, end in [(T0 + 3 * MIN, T0 + MIN), (T0 + 2 * MIN + 5, T0 + 2 * MIN + 5)]:
        assert ticks_between(engine, "trades", Selection(start=start, end=end)).rows.num_rows == 0
        assert minute_bars(engine, start=start, end=end) == []
        assert bars(engine, Selection(["AAPL"], "XNAS", start, end), parse_interval("1m"), "UTC").rows.num_rows == 0
    # The same bounds the right way round do hold the trade at minute 2.
    assert ticks_between(engine, "trades", Selection(start=T0 + MIN, end=T0 + 3 * MIN)).rows.num_rows == 1


def test_names_of_nothing_are_not_found_and_realtime_without_kafka_is_a_conflict(engine):
    page = ticks_between(engine, "trades", limit=1)
    snapshot = page.freshness.snapshot_id
    with pytest.raises(NotFound, match=rf"^no snapshot {snapshot + 1} in trades"):
        ticks_between(engine, "trades", Selection(snapshot_id=snapshot + 1))
    with pytest.raises(NotFound, match=r"^no snapshot of quotes at or before 1970-01-01T00:00:00"):
        ticks_between(engine, "quotes", Selection(as_of=0))
    after = Cursor.decode(page.next_cursor)
    elsewhere = Cursor(snapshot + 1, after.timestamp, after.topic, after.partition, after.offset).encode()
    with pytest.raises(NotFound, match=rf"^this cursor points to no page: no snapshot {snapshot + 1} in trades"):
        ticks_between(engine, "trades", cursor=elsewhere)
    with pytest.raises(NotFound, match=r"^this cursor points to no page"):
        ticks_between(engine, "trades", cursor="lQAAAAAA")  # of the encoder's form, but no cursor's bytes
    with pytest.raises(QueryError) as malformed:
        ticks_between(engine, "trades", cursor="not-a-cursor")
    assert type(malformed.value) is QueryError  # malformed: neither a NotFound nor a Conflict
    for realtime_read in (
        lambda: ticks_between(engine, "trades", Selection(realtime=True)),
        lambda: ticks_between(engine, "trades", Selection(snapshot_id=snapshot, realtime=True)),
        lambda: bars(engine, Selection(["AAPL"], "XNAS", realtime=True), parse_interval("1m"), "UTC"),
    ):
        with pytest.raises(Conflict, match=r"no Kafka tail \(K2_KAFKA_BOOTSTRAP\)"):
            realtime_read()
