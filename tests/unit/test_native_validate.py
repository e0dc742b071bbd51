"""The compiled path (`k2_native`) against the Python exact path (`decode`), message by message.

For any bytes, and for perturbed valid messages (odd decimals and exponents, huge numbers, unicode, duplicate keys,
nested junk, missing fields, milliseconds for microseconds), the two agree:

- the compiled path accepts only what the exact path accepts (`decode` returns a record), and for messages in the
  spellings it reads (every generated one below) it accepts all of them;
- the values of an accepted row equal the exact path's record, column by column (decimals as `Decimal`s read by
  Python from the message's own text, times as integer µs);
- `validate_batch` (both paths together) gives every message the exact path's verdict and reason;
- the malformed-input corpus of the fuzzing suite (tests/chaos/test_fuzz.py) gets the same verdicts.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal

import k2_native
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k2.ingest.checks import check_quote
from k2.ingest.validate import Rejection, Rules, decode, validate_batch
from k2.model.batch import RawBatch
from k2.model.schemas import Quote, Trade
from tests.chaos.test_fuzz import GENERATORS
from tests.fixtures.market import T0, quote, trade

pytestmark = pytest.mark.unit

RULES = Rules(946_684_800_000_000, 4_102_444_800_000_000)
MONEY = {"trade": ("price", "quantity"), "quote": ("bid_price", "bid_quantity", "ask_price", "ask_quantity")}
ID = {"trade": "trade_id", "quote": "quote_id"}
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def native(values: list[bytes], kind: str) -> tuple[list[dict], list[int]]:
    """The compiled path's rows (as dicts, times as µs) and the indices of the messages it accepted."""
    batch, left = k2_native.validate(values, kind, RULES.min_timestamp_us, RULES.max_timestamp_us)
    left_out = set(left)
    rows = batch.to_pylist()
    for row in rows:
        for name in ("timestamp", "ingestion_timestamp"):
            if row[name] is not None:
                row[name] = _micros(row[name])
    return rows, [i for i in range(len(values)) if i not in left_out]


def _micros(moment) -> int:
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def expected_row(record: Trade | Quote, kind: str) -> dict:
    """What the exact path says the row holds, straight from the decoded record (not from K2's columnar code)."""
    row = {
        name: getattr(record, name)
        for name in ("exchange", "symbol", "timestamp", "ingestion_timestamp", "currency", "source_sequence")
    }
    row["message_id"] = record.message_id
    row["asset_class"] = record.asset_class.value
    row[ID[kind]] = getattr(record, ID[kind])
    row["vendor_data"] = None if record.vendor_data is None else list(record.vendor_data.items())
    for name in MONEY[kind]:
        row[name] = getattr(record, name)
    if kind == "trade":
        row["side"] = record.side.value
        row["trade_conditions"] = record.trade_conditions
    else:
        row["one_sided"], row["crossed"] = record.one_sided, record.crossed
    return row


def assert_same_verdicts(values: list[bytes], kind: str, *, complete: bool) -> None:
    """The compiled path accepts a subset of what the exact path accepts (all of it, with `complete`), with the
    exact path's values; and `validate_batch` gives every message the exact path's verdict and reason."""
    reference = [decode(value, kind, RULES) for value in values]
    rows, accepted = native(values, kind)
    accepted_by_reference = [i for i, outcome in enumerate(reference) if not isinstance(outcome, Rejection)]
    assert set(accepted) <= set(accepted_by_reference), [values[i] for i in set(accepted) - set(accepted_by_reference)]
    if complete:
        assert accepted == accepted_by_reference, [values[i] for i in set(accepted_by_reference) - set(accepted)]
    for row, i in zip(rows, accepted, strict=True):
        expected = expected_row(reference[i], kind)  # type: ignore[arg-type]
        assert {name: row[name] for name in expected} == expected, values[i]
        for name in MONEY[kind]:  # decimal128 with scale 8, equal to the exact Decimal
            assert row[name] is None or row[name].as_tuple().exponent == -8
    batch = validate_batch(RawBatch("market.test", 0, list(range(len(values))), list(values)), kind, RULES)
    reasons = {d.source_offset: d.reason for d in batch.dead_letters}
    assert reasons == {i: o.reason for i, o in enumerate(reference) if isinstance(o, Rejection)}
    assert batch.offsets == accepted_by_reference


# --- any bytes ---------------------------------------------------------------------------------------------------


@SETTINGS
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=20), st.sampled_from(["trade", "quote"]))
def test_any_bytes_get_the_exact_paths_verdict(values, kind):
    assert_same_verdicts(values, kind, complete=False)


JSON_BYTES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
).map(lambda v: json.dumps(v).encode())


@SETTINGS
@given(st.lists(JSON_BYTES, min_size=1, max_size=20), st.sampled_from(["trade", "quote"]))
def test_any_json_gets_the_exact_paths_verdict(values, kind):
    assert_same_verdicts(values, kind, complete=False)


def test_the_fuzzing_corpus_gets_the_exact_paths_verdicts():
    rng = random.Random(20_261_204)
    for kind in ("trade", "quote"):
        values = [rng.choice(GENERATORS)(rng, kind) for _ in range(2_000)]
        assert_same_verdicts(values, kind, complete=False)


# --- perturbed valid messages: the compiled path decides all of them ------------------------------------------------

# Decimal text in the grammar both paths read: signs, leading/trailing zeros, exponents, many digits.
DIGITS = st.text("0123456789", min_size=0, max_size=24)
DECIMAL_TEXT = st.builds(
    lambda sign, whole, point, frac, exp: f"{sign}{whole}{point}{frac}{exp}",
    st.sampled_from(["", "", "-", "+"]),
    DIGITS,
    st.sampled_from([".", ".", ""]),
    DIGITS,
    st.sampled_from(["", "", "e", "E-", "e+"]).flatmap(
        lambda e: st.just("") if not e else st.integers(0, 40).map(lambda n: f"{e}{n}")
    ),
).filter(lambda t: any(c.isdigit() for c in t.split("e")[0].split("E")[0]))
JSON_NUMBER = st.decimals(allow_nan=False, allow_infinity=False, places=None).map(lambda d: f"{d:f}") | st.from_regex(
    r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)
MONEY_VALUE = (
    DECIMAL_TEXT.map(json.dumps)
    | JSON_NUMBER
    | st.sampled_from(["null", "true", "[]", "{}", '"1.5"', '"0"', "0", "1e2", '"9999999999.99999999"', '"1e10"'])
)
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
INT = st.sampled_from([T0, T0 // 1000, T0 * 1000, 0, -1, 2**63 - 1, 2**63 - 2, 2**63, 2**64, 1, 10**30]) | st.integers(
    -(2**65), 2**65
)
STRUCTURED = st.recursive(
    st.none() | st.booleans() | st.integers() | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)


def field_values(kind: str) -> dict[str, st.SearchStrategy[str]]:
    """Per field, JSON texts of right and wrong values."""
    ints = INT.map(str) | st.sampled_from(["1.0", "1e3", "null", '"1"', "-0", "-0.0", "1E3", "-1"])
    texts = TEXT.map(json.dumps) | st.sampled_from(['""', "null", "1", "[]", '"\\u0000"', '"\\ud83d\\ude00"'])
    values = {
        "exchange": texts,
        "symbol": texts,
        "currency": texts,
        ID[kind]: texts,
        "asset_class": st.sampled_from(['"crypto"', '"fx"', '"bonds"', '"Crypto"', "null"]),
        "timestamp": ints,
        "ingestion_timestamp": ints,
        "source_sequence": ints,
        "message_id": texts,
        "vendor_data": st.sampled_from(["null", "{}", '{"a":1}', "[]"])
        | st.dictionaries(TEXT, TEXT, max_size=3).map(json.dumps),
        "extra": STRUCTURED.map(json.dumps),
    }
    for name in MONEY[kind]:
        values[name] = MONEY_VALUE
    if kind == "trade":
        values["side"] = st.sampled_from(['"BUY"', '"SELL"', '"HOLD"', '"buy"', "null"])
        values["trade_conditions"] = st.sampled_from(["[]", "null", '["@"]', "[1]"]) | st.lists(TEXT).map(json.dumps)
    else:
        values["one_sided"] = st.sampled_from(["true", "false", "null", "1"])
    return values


@st.composite
def perturbed(draw, kind: str) -> bytes:
    """A valid message as (key, JSON text) pairs, then a few fields replaced, repeated (duplicate keys) or dropped."""
    base = trade() if kind == "trade" else quote()
    pairs = [(key, json.dumps(value)) for key, value in base.items()]
    values = field_values(kind)
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(sorted(values)))
        action = draw(st.sampled_from(["replace", "replace", "repeat", "drop"]))
        text = draw(values[name])
        if action == "replace":
            pairs = [(k, v) for k, v in pairs if k != name] + [(name, text)]
        elif action == "repeat":
            pairs.append((name, text))
        else:
            pairs = [(k, v) for k, v in pairs if k != name]
    spacing = draw(st.sampled_from(["", " ", "\n\t"]))
    body = ("," + spacing).join(f"{json.dumps(k, ensure_ascii=draw(st.booleans()))}:{spacing}{v}" for k, v in pairs)
    return f"{spacing}{{{body}}}{spacing}".encode()


@SETTINGS
@given(st.data(), st.sampled_from(["trade", "quote"]))
def test_perturbed_messages_get_the_same_verdict_and_values(data, kind):
    values = data.draw(st.lists(perturbed(kind), min_size=1, max_size=25))
    assert_same_verdicts(values, kind, complete=True)


# Found by the sweeps above (and kept): a repeated key's last value wins, whatever the earlier one was as long as
# it had the right type; ints have no size limit and `-0` is 0; unknown fields may hold numbers beyond any float.
EDGES = [
    b'"ask_price":0.0000999201,"ask_price":".0"',
    b'"ask_price":"1e400","ask_price":"2"',
    b'"source_sequence":99999999999999999999999,"source_sequence":5',
    b'"source_sequence":-9223372036854775809,"source_sequence":5',
    b'"timestamp":1,"timestamp":%d' % T0,
    b'"source_sequence":-0',
    b'"source_sequence":9223372036854775806',
    b'"source_sequence":9223372036854775807',
    b'"x":1e999',
    b'"x":-0.0e-5',
    b'"x":"\\ud800"',
    b'"x":["\\ud83d\\ude00"]',
    b'"x":' + b"[" * 100 + b"]" * 100,
    b'"x":' + b"[" * 5_000 + b"]" * 5_000,
]


@pytest.mark.parametrize("kind", ["trade", "quote"])
def test_edges_get_the_same_verdict(kind):
    base = msgspec.json.encode(trade() if kind == "trade" else quote())
    assert_same_verdicts([base[:-1] + b"," + edge + b"}" for edge in EDGES], kind, complete=True)


@pytest.mark.parametrize("kind", ["trade", "quote"])
def test_exact_values_and_derived_flags(kind):
    messages = (
        [
            trade(price="0.1", quantity=0.2),
            trade(price=1e2, quantity="12345678.12345678"),
            trade(price="1.000000000", quantity="1"),
        ]
        if kind == "trade"
        else [quote(bid_price="10.02", ask_price="10.01"), quote(bid_price="0", ask_price="1"), quote(ask_price=None)]
    )
    values = [msgspec.json.encode(m) for m in messages]
    rows, accepted = native(values, kind)
    assert accepted == [0, 1, 2]
    if kind == "trade":
        assert [(r["price"], r["quantity"]) for r in rows] == [
            (Decimal("0.1"), Decimal("0.2")),
            (Decimal(100), Decimal("12345678.12345678")),
            (Decimal(1), Decimal(1)),
        ]
    else:
        assert [(r["bid_price"], r["one_sided"], r["crossed"]) for r in rows] == [
            (Decimal("10.02"), False, True),
            (None, True, False),
            (Decimal("187.24"), True, False),
        ]
        record = decode(values[0], "quote", RULES)
        assert isinstance(record, Quote) and check_quote(record, RULES) is None and record.crossed


def test_non_json_bytes_are_left_to_the_exact_path():
    """Bytes that are not JSON (e.g. Confluent's wire format, magic byte 0) are never judged here."""
    values = [b"\x00\x00\x00\x00\x01\x02abc", b"\x00", msgspec.json.encode(trade())]
    assert native(values, "trade")[1] == [2]


@pytest.mark.parametrize("kind", ["trade", "quote"])
def test_valid_batches_take_the_compiled_path(kind, caplog):
    """Every optional field filled: the compiled path's batch fits the table's schema (no fallback, no log)."""
    extra = {"vendor_data": {"venue": "X", "lot": "odd"}, "message_id": "m1", "ingestion_timestamp": T0 + 1}
    message = trade(trade_conditions=["@", "F"], **extra) if kind == "trade" else quote(**extra)
    batch = validate_batch(RawBatch("market.test", 0, [7], [msgspec.json.encode(message)]), kind, RULES)
    assert len(batch.records) == 1 and not batch.dead_letters and batch.offsets == [7]
    assert "compiled validation failed" not in caplog.text


def test_a_failing_compiled_path_leaves_the_batch_to_the_exact_path(caplog):
    """A fault in the compiled path never stops the flow: the batch takes the exact path. Here the fault is real:
    a source handing over a `bytearray`, which the compiled path refuses and msgspec reads."""
    values = [bytearray(msgspec.json.encode(trade(trade_id="a"))), *map(msgspec.json.encode, [trade(price="x")])]
    batch = validate_batch(RawBatch("market.trades", 0, [0, 1], values), "trade", RULES)  # type: ignore[arg-type]
    assert [r.trade_id for r in batch.records] == ["a"]
    assert [d.reason for d in batch.dead_letters] == ["bad_decimal:price"]
    assert "compiled validation failed" in caplog.text
