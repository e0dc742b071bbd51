"""The exchange adapters' normalisation, frame by frame: exact texts, µs times, sides, symbols, sequences, and what
a frame that is not market data becomes. Expected values come from the frames written here."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k2.feeds.binance import Binance
from k2.feeds.coinbase import Coinbase
from k2.feeds.kraken import Kraken
from k2.feeds.normalise import QuoteSequencer, parse_symbols, to_message
from k2.feeds.runner import Backoff
from k2.ingest.checks import Rejection, Rules
from k2.ingest.validate import decode
from k2.ops.config import load_settings
from tests.fixtures.exchange_frames import START_US, WRITERS, Quote, Trade, iso

INSTRUMENTS = parse_symbols("BTC-USD,ETH-USD")
ADAPTERS = {"binance": Binance, "coinbase": Coinbase, "kraken": Kraken}
RULES = Rules.from_settings(load_settings({}))
RECEIVED = START_US + 5_000_000


def adapter(name: str):
    return ADAPTERS[name](INSTRUMENTS)


def wire(kind: str, row) -> dict:
    message = to_message(kind, row)
    assert isinstance(decode(message.value, kind, RULES), msgspec.Struct)  # K2's validation takes it as it is
    return json.loads(message.value)


def test_symbols_are_base_quote_and_map_to_each_exchange():
    assert [i.symbol for i in parse_symbols(" btc-usd, ETH/USDT ")] == ["BTC-USD", "ETH-USDT"]
    for bad in ("BTCUSD", "BTC-", "-USD", "", "A-B-C"):
        with pytest.raises(ValueError, match=r"BASE-QUOTE|no symbols"):
            parse_symbols(bad)
    btc = INSTRUMENTS[0]
    assert (Binance(INSTRUMENTS).native(btc), Coinbase(INSTRUMENTS).native(btc), Kraken(INSTRUMENTS).native(btc)) == (
        "BTCUSD",
        "BTC-USD",
        "BTC/USD",
    )


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_trade_frame_normalises_to_the_wire_exactly(name):
    event = Trade("ETH-USD", 4_665_906, "3500.10000000", "0.00000001", "SELL", START_US + 123_456)
    parsed = adapter(name).parse(WRITERS[name].trade(event), RECEIVED)
    assert parsed.outcome == "data" and len(parsed.trades) == 1
    got = wire("trade", parsed.trades[0])
    when = event.time_us // 1_000 * 1_000 if name == "binance" else event.time_us  # Binance sends milliseconds
    assert got["exchange"] == name.upper() and got["symbol"] == "ETH-USD" and got["currency"] == "USD"
    expected = ("3500.10000000", "0.00000001", "SELL", when)
    assert (got["price"], got["quantity"], got["side"], got["timestamp"]) == expected
    assert got["trade_id"] == "4665906" and got["source_sequence"] == 4_665_906
    assert got["ingestion_timestamp"] == RECEIVED and got["asset_class"] == "crypto"
    assert got["vendor_data"]["native_symbol"] == WRITERS[name].native("ETH-USD")


def test_vendor_data_keeps_what_k2_has_no_column_for():
    coinbase = Coinbase(INSTRUMENTS).parse(WRITERS["coinbase"].trade(Trade("BTC-USD", 9, "1", "1", "BUY", START_US)), 0)
    vendor = coinbase.trades[0].vendor_data
    assert vendor["side"] == "sell" and vendor["type"] == "match"  # the maker sold: the aggressor bought
    assert vendor["maker_order_id"].startswith("ac928c66") and vendor["sequence"] == "50009"
    binance = Binance(INSTRUMENTS).parse(WRITERS["binance"].trade(Trade("BTC-USD", 9, "1", "1", "BUY", START_US)), 0)
    assert binance.trades[0].vendor_data == {"native_symbol": "BTCUSD", "E": str(START_US // 1000 + 1), "M": "true"}
    quote = Quote("BTC-USD", 1, "1", "2", "3", "4", START_US)
    kraken = Kraken(INSTRUMENTS).parse(WRITERS["kraken"].quote(quote), 0).quotes[0][0].vendor_data
    assert kraken["change_pct"] == "-0.17" and kraken["volume"] == "997038.98383185" and kraken["type"] == "update"


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_quote_frame_normalises_to_the_wire_exactly(name):
    event = Quote("BTC-USD", 400_900_217, "25.35190000", "31.21000000", "25.36520000", "40.66", START_US + 7)
    parsed = adapter(name).parse(WRITERS[name].quote(event), RECEIVED)
    assert parsed.outcome == "data"
    (row, _order), = parsed.quotes  # fmt: skip
    got = wire("quote", row)
    assert (got["bid_price"], got["bid_quantity"], got["ask_price"], got["ask_quantity"]) == (
        "25.35190000", "31.21000000", "25.36520000", "40.66")  # fmt: skip
    if name == "binance":  # spot book tickers carry no time: the frame's arrival is the timestamp
        assert got["timestamp"] == RECEIVED and got["vendor_data"]["timestamp_source"] == "received"
    else:
        assert got["timestamp"] == event.time_us
    assert got["quote_id"] == (str(event.time_us) if name == "kraken" else str(event.order))
    assert got["source_sequence"] is None  # numbered by the runner's QuoteSequencer


DECIMALS = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("9999999999.99999999"), places=8)


@settings(max_examples=150, deadline=None)
@given(price=DECIMALS, size=DECIMALS, zeros=st.integers(0, 3), name=st.sampled_from(sorted(WRITERS)))
def test_decimal_texts_arrive_exactly_as_the_exchange_wrote_them(price, size, zeros, name):
    # Trailing zeros and integers are kept as written: the text is the exchange's, never re-rendered.
    price_text = f"{price:f}" + ("0" * zeros if "." in f"{price:f}" else "")
    size_text = f"{size.normalize():f}"
    event = Trade("BTC-USD", 1, price_text, size_text, "BUY", START_US)
    got = wire("trade", adapter(name).parse(WRITERS[name].trade(event), RECEIVED).trades[0])
    assert (got["price"], got["quantity"]) == (price_text, size_text)
    assert (Decimal(got["price"]), Decimal(got["quantity"])) == (price, size)


@settings(max_examples=100, deadline=None)
@given(micros=st.integers(946_684_800_000_000, 4_102_444_799_999_999), nanos=st.integers(0, 999))
def test_rfc3339_times_become_integer_microseconds_utc(micros, nanos):
    text = iso(micros)[:-1] + f"{nanos:03d}Z"  # nanosecond digits floor to the µs
    frame = json.dumps({"type": "match", "trade_id": 1, "time": text, "product_id": "BTC-USD", "size": "1",
                        "price": "1", "side": "buy"})  # fmt: skip
    assert Coinbase(INSTRUMENTS).parse(frame, 0).trades[0].timestamp == micros


def test_frames_that_are_not_market_data_are_classified_never_raised():
    kraken = Kraken(INSTRUMENTS)
    writer = WRITERS["kraken"]
    trade = Trade("ETH-USD", 7, "1", "1", "BUY", START_US)
    missing = kraken.parse(writer.malformed_trade(trade), 0)
    assert (missing.outcome, missing.raw_to, missing.detail) == ("malformed", "trade", "no 'price' in the frame")
    assert kraken.parse(b"\xff{", 0).outcome == "malformed" and kraken.parse("[1]", 0).raw_to is None
    assert kraken.parse(writer.unknown(), 0).outcome == "unknown"
    assert kraken.parse(writer.heartbeat(), 0).outcome == "heartbeat"
    assert kraken.parse(writer.error(), 0).outcome == "error"
    assert {kraken.parse(a, 0).outcome for a in writer.acks()} == {"control"}
    other = kraken.parse(writer.trade(Trade("SOL-USD", 7, "1", "1", "BUY", START_US)), 0)
    assert (other.outcome, other.detail) == ("malformed", "symbol 'SOL/USD' was not subscribed")
    bad_side = WRITERS["coinbase"].trade(trade).replace('"side": "sell"', '"side": "both"')
    assert Coinbase(INSTRUMENTS).parse(bad_side, 0).raw_to == "trade"
    for name in ("binance", "coinbase"):
        assert adapter(name).parse(WRITERS[name].error(), 0).outcome == "error"
        assert adapter(name).parse(WRITERS[name].unknown(), 0).outcome == "unknown"


def test_subscriptions_ask_for_the_streams_chosen():
    (binance,) = Binance(INSTRUMENTS, quotes=False).subscriptions()
    assert json.loads(binance)["params"] == ["btcusd@trade", "ethusd@trade"]
    (coinbase,) = Coinbase(INSTRUMENTS, trades=False).subscriptions()
    assert json.loads(coinbase)["channels"] == ["heartbeat", "ticker"]
    kraken = [json.loads(s)["params"] for s in Kraken(INSTRUMENTS).subscriptions()]
    assert [p["channel"] for p in kraken] == ["trade", "ticker"] and kraken[1]["event_trigger"] == "bbo"
    assert json.loads(Kraken(INSTRUMENTS).ping())["method"] == "ping"
    with pytest.raises(ValueError, match="nothing to subscribe"):
        Kraken(INSTRUMENTS, trades=False, quotes=False)


def test_quote_sequence_leaves_one_hole_per_reconnect_and_skips_resent_quotes():
    sequencer = QuoteSequencer(start_us=1_000)
    kraken = Kraken(INSTRUMENTS)

    def quote(ts: int, bid: str = "1"):
        return kraken.parse(WRITERS["kraken"].quote(Quote("BTC-USD", 0, bid, "1", "2", "1", ts)), 0).quotes[0]

    numbers = []
    for row, order in (quote(10), quote(11), quote(11, "1.5")):  # same µs, another book: not a re-send
        assert sequencer.assign(row, order)
        numbers.append(row.source_sequence)
    sequencer.reconnected()
    assert not sequencer.assign(*quote(11, "1.5"))  # the snapshot after resubscribing repeats the last one
    assert not sequencer.assign(*quote(9))  # older than the last published
    row, order = quote(12)
    assert sequencer.assign(row, order)
    assert [*numbers, row.source_sequence] == [1_000, 1_001, 1_002, 1_004]


def test_backoff_grows_with_jitter_up_to_its_cap_and_resets():
    backoff = Backoff(0.5, 8.0, random.Random(3))
    waits = [backoff.next() for _ in range(8)]
    caps = [min(8.0, 0.5 * 2**n) for n in range(8)]
    assert all(cap / 2 <= wait <= cap for wait, cap in zip(waits, caps, strict=True))
    assert len(set(waits)) == len(waits)  # jittered
    backoff.reset()
    assert 0.25 <= backoff.next() <= 0.5


def test_a_rejected_wire_message_would_be_a_dead_letter_not_a_crash():
    # An exchange text K2 cannot hold exactly (9 places) passes the feed and is rejected by validation with a reason.
    event = Trade("BTC-USD", 1, "0.123456789", "1", "BUY", START_US)
    row = Binance(INSTRUMENTS).parse(WRITERS["binance"].trade(event), RECEIVED).trades[0]
    outcome = decode(to_message("trade", row).value, "trade", RULES)
    assert isinstance(outcome, Rejection) and outcome.reason == "bad_decimal:price"


def test_binance_combined_stream_frames_are_unwrapped_and_shutdown_notices_are_control():
    event = Trade("BTC-USD", 12345, "0.001", "100", "SELL", START_US)
    wrapped = f'{{"stream": "btcusd@trade", "data": {WRITERS["binance"].trade(event)}}}'
    parsed = Binance(INSTRUMENTS).parse(wrapped, RECEIVED)
    assert parsed.outcome == "data" and parsed.trades[0].source_sequence == 12345
    assert parsed.trades[0].side == "SELL"  # the buyer was the maker
    notice = Binance(INSTRUMENTS).parse('{"e": "serverShutdown", "E": 1700000000000}', RECEIVED)
    assert notice.outcome == "control"
