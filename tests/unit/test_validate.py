from decimal import Decimal

import pytest

from k2.ingest.validate import Rejection, Rules, decode, validate_batch
from k2.model.schemas import Quote, Side, Trade
from tests.fixtures.market import DROP, T0, quote, raw_batch, trade, wire

RULES = Rules(946_684_800_000_000, 4_102_444_800_000_000)


def reason(message, kind="trade") -> str:
    outcome = decode(wire(message), kind, RULES)
    assert isinstance(outcome, Rejection), f"expected a rejection, got {outcome!r}"
    return outcome.reason


def test_valid_trade_decodes_exactly():
    record = decode(wire(trade(price="0.1", quantity=0.2)), "trade", RULES)
    assert isinstance(record, Trade)
    assert record.price == Decimal("0.1") and record.quantity == Decimal("0.2")
    assert record.price + record.quantity == Decimal("0.3")  # never went through float
    assert record.side is Side.BUY and record.trade_conditions == ["@"]


def test_json_numbers_are_read_as_decimals_without_float():
    record = decode(
        b'{"exchange":"X","symbol":"S","asset_class":"fx","timestamp":%d,"currency":"USD",'
        b'"trade_id":"1","price":1.10000001,"quantity":12345678.12345678,"side":"SELL"}' % T0,
        "trade",
        RULES,
    )
    assert isinstance(record, Trade)
    assert record.price == Decimal("1.10000001")
    assert record.quantity == Decimal("12345678.12345678")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"{not json", "malformed_json"),
        (b"", "malformed_json"),
        (b"\xff\xfe", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (trade(price=DROP), "missing_field:price"),
        (trade(symbol=DROP), "missing_field:symbol"),
        (trade(trade_id=DROP), "missing_field:trade_id"),
        (trade(price="12..5"), "bad_decimal:price"),
        (trade(price="NaN"), "bad_decimal:price"),
        (trade(price="Infinity"), "bad_decimal:price"),
        (trade(price="0.123456789"), "bad_decimal:price"),  # not exact in decimal(18,8)
        (trade(price="12345678901"), "bad_decimal:price"),  # too large for decimal(18,8)
        (trade(quantity=True), "bad_decimal:quantity"),
        (trade(price="-1.5"), "negative_price"),
        (trade(price="0"), "zero_price"),
        (trade(quantity="0"), "non_positive_quantity"),
        (trade(quantity="-3"), "non_positive_quantity"),
        (trade(timestamp=T0 // 1000), "timestamp_out_of_range"),  # milliseconds by mistake
        (trade(timestamp=T0 * 1000), "timestamp_out_of_range"),  # nanoseconds by mistake
        (trade(ingestion_timestamp=5), "timestamp_out_of_range"),
        (trade(timestamp=1.5), "invalid_field:timestamp"),
        (trade(side="HOLD"), "unknown_side"),
        (trade(asset_class="bonds"), "unknown_asset_class"),
        (trade(symbol=""), "empty_field:symbol"),
        (trade(exchange=""), "empty_field:exchange"),
        (trade(trade_id=""), "empty_field:trade_id"),
        (trade(source_sequence=-1), "negative_sequence"),
        (trade(vendor_data={"a": 1}), "invalid_field:vendor_data"),
    ],
)
def test_trade_rejection_reasons(message, expected):
    assert reason(message) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (quote(quote_id=DROP), "missing_field:quote_id"),
        (quote(bid_price="-0.01"), "negative_price"),
        (quote(ask_quantity="-5"), "negative_quantity"),
        (quote(ask_price="abc"), "bad_decimal:ask_price"),
        (quote(bid_quantity="1e-9"), "bad_decimal:bid_quantity"),
    ],
)
def test_quote_rejection_reasons(message, expected):
    assert reason(message, "quote") == expected


def test_unknown_kind_is_a_rejection_not_a_crash():
    assert reason(trade(), kind="option_chain") == "unknown_kind"


@pytest.mark.parametrize("sequence", [2**63 - 1, 2**63, 10**40])
def test_a_sequence_beyond_64_bits_is_a_dead_letter_not_an_arrow_overflow(sequence):
    """Found by tests/chaos/test_fuzz.py: it passed validation and then failed the cast to the long column (or,
    for 2**63 - 1, the expected next number of a gap/reset event)."""
    from k2.ingest.columnar import to_arrow

    assert reason(trade(source_sequence=sequence)) == "invalid_field:source_sequence"
    assert reason(quote(source_sequence=sequence), "quote") == "invalid_field:source_sequence"
    batch = validate_batch(
        raw_batch([trade(source_sequence=2**63 - 2), trade(source_sequence=sequence)]), "trade", RULES
    )
    assert len(batch.records) == 1 and [d.reason for d in batch.dead_letters] == ["invalid_field:source_sequence"]
    assert to_arrow(batch).tables["trades"]["source_sequence"].to_pylist() == [2**63 - 2]


@pytest.mark.parametrize("bad", [b"\xed\xa0\x80", b"\xff", b"\xc0\xaf", b"\xe2\x82"])
def test_bad_utf8_in_a_string_is_malformed_json_not_a_crash(bad):
    """msgspec raises UnicodeDecodeError (not a DecodeError) for these; found by tests/chaos/test_fuzz.py."""
    value = wire(trade()).replace(b'"AAPL"', b'"AA' + bad + b'PL"')
    assert reason(value) == "malformed_json"
    batch = validate_batch(raw_batch([wire(trade()), value]), "trade", RULES)
    assert len(batch.records) == 1 and [d.reason for d in batch.dead_letters] == ["malformed_json"]


def test_quote_flags_are_derived_not_rejected():
    crossed = decode(wire(quote(bid_price="10.02", ask_price="10.01")), "quote", RULES)
    assert isinstance(crossed, Quote) and crossed.crossed and not crossed.one_sided
    one_sided = decode(wire(quote(bid_price="0.0", bid_quantity="0")), "quote", RULES)
    assert isinstance(one_sided, Quote) and one_sided.one_sided and not one_sided.crossed
    assert one_sided.bid_price is None and one_sided.bid_quantity is None  # an empty side is null, not 0
    missing_ask = decode(wire(quote(ask_price=None, ask_quantity=None)), "quote", RULES)
    assert isinstance(missing_ask, Quote) and missing_ask.one_sided
    locked = decode(wire(quote(bid_price="10.01", ask_price="10.01")), "quote", RULES)
    assert isinstance(locked, Quote) and not locked.crossed and not locked.one_sided


def test_wire_flags_are_overwritten_by_derivation():
    record = decode(wire(quote(crossed=True, one_sided=True)), "quote", RULES)
    assert isinstance(record, Quote) and not record.crossed and not record.one_sided


def test_validation_ignores_the_wall_clock():
    # A message from 2001 and one from 2099 are both inside the fixed bounds: no "too old" verdict exists.
    early = decode(wire(trade(timestamp=978_307_200_000_000)), "trade", RULES)
    late = decode(wire(trade(timestamp=4_070_908_800_000_000)), "trade", RULES)
    assert isinstance(early, Trade) and isinstance(late, Trade)


def test_batch_keeps_offsets_and_dead_letters_with_raw_bytes():
    messages = [trade(trade_id="a"), b"garbage", trade(trade_id="b", price="-1"), trade(trade_id="c")]
    batch = validate_batch(raw_batch(messages, start=40), "trade", RULES)
    assert [r.trade_id for r in batch.records] == ["a", "c"]
    assert batch.offsets == [40, 43]
    assert [(d.source_offset, d.reason) for d in batch.dead_letters] == [(41, "malformed_json"), (42, "negative_price")]
    assert batch.dead_letters[0].raw == b"garbage"
    assert batch.dead_letters[0].source_topic == "market.trades" and batch.dead_letters[0].kind == "trade"
    assert "JSON" in batch.dead_letters[0].detail
    assert batch.messages_in == 4 and batch.first_offset == 40 and batch.next_offset == 44


def test_missing_ingestion_timestamp_comes_from_the_source_record():
    raw = raw_batch([trade(ingestion_timestamp=DROP), trade(trade_id="2")])
    raw.timestamps = [T0 + 7, T0 + 9]
    batch = validate_batch(raw, "trade", RULES)
    assert [r.ingestion_timestamp for r in batch.records] == [T0 + 7, T0 + 500]
    assert batch.source_timestamps == [T0 + 7, T0 + 9]


# The batch path (compiled, decimals read from their text) must give exactly the verdicts of `decode` (Decimal), and
# the values Arrow stores must be those Decimals.
TRICKY_DECIMALS = [
    "187.25",
    "1",
    "0.00000001",
    "9999999999.99999999",
    "10000000000",
    "0123",
    "00.5",
    "1.50000000000",
    "1.123456789",
    "00",
    "000.000",
    "0" * 11,
    "0.",
    "0",
    "0.0",
    "0.000000000",
    "-0",
    "-1.5",
    "+1.5",
    "1e2",
    "1E-9",
    "1.",
    ".5",
    " 1.5",
    "1.5 ",
    "",
    "NaN",
    "Infinity",
    "12..5",
    "1_000",
    "\u0661\u0662",
    "1\n2",
    "abc",
    1.5,
    2,
    0,
    True,
    None,
    [],
    "1" * 11,
]


def _exact_outcome(message, kind):
    outcome = decode(wire(message), kind, RULES)
    return outcome.reason if isinstance(outcome, Rejection) else outcome


@pytest.mark.parametrize("kind", ["trade", "quote"])
def test_batch_verdicts_and_values_match_the_exact_decimal_path(kind):
    from k2.ingest.columnar import to_arrow

    fields = ("price", "quantity") if kind == "trade" else ("bid_price", "bid_quantity", "ask_price", "ask_quantity")
    build = trade if kind == "trade" else quote
    messages = [build(trade_id=f"t{i}") if kind == "trade" else build(quote_id=f"q{i}") for i in range(3)]
    for field in fields:
        for value in TRICKY_DECIMALS:
            messages.append(build(**{field: value}))
    messages += [build(**dict.fromkeys(fields, "1.5\n2")), build(source_sequence=None)]
    if kind == "quote":
        messages += [
            quote(bid_price="10.02", ask_price="10.01"),
            quote(bid_price="10.01", ask_price="10.01"),
            quote(bid_price="10.02", ask_price="0"),
            quote(bid_price=10.02, ask_price="10.01"),
            quote(bid_price=None, bid_quantity="-1"),
        ]
    batch = validate_batch(raw_batch(messages), kind, RULES)
    expected = [_exact_outcome(m, kind) for m in messages]
    assert [d.reason for d in batch.dead_letters] == [e for e in expected if isinstance(e, str)]
    assert [d.source_offset for d in batch.dead_letters] == [i for i, e in enumerate(expected) if isinstance(e, str)]
    assert batch.offsets == [i for i, e in enumerate(expected) if not isinstance(e, str)]
    table = to_arrow(batch).tables["trades" if kind == "trade" else "quotes"].to_pylist()
    records = [e for e in expected if not isinstance(e, str)]
    assert len(table) == len(records)
    for row, record in zip(table, records, strict=True):
        for field in fields:
            assert row[field] == getattr(record, field), (field, row, record)
        if kind == "quote":
            assert (row["one_sided"], row["crossed"]) == (record.one_sided, record.crossed)
        assert row["asset_class"] == record.asset_class.value
