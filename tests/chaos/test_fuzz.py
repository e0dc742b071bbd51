"""Fuzzing the decode/validate path: well over 100k malformed messages, none crashes it, every one is accounted for.

The messages come from a seeded generator (random bytes; valid JSON with bits flipped, characters deleted,
duplicated or inserted, cut short; fields of the wrong type; huge numbers, NaN and Infinity, deep nesting, bad
UTF-8, decimals and timestamps at and beyond their limits) and from hypothesis (structurally plausible messages
with wrong parts, derandomized). For each batch:

- `validate_batch` returns; each message is exactly one valid row or one dead letter, keeping its offset;
- a dead letter keeps the raw bytes and a machine-readable reason from the documented list, naming a real field;
- the batch's verdict on every message equals the exact one-message path (`decode`): same acceptance, same reason;
- a row holds what validation promises (non-empty ids, times in range, money as plain decimal(18,8) text), and
  the batch turns into Arrow as the flow would do next.

A share runs through the real flow (Bytewax testing source, temp-dir warehouse): rows + dead letters + duplicates
equal the messages, per partition, and the dead letters' reasons are the ones `validate_batch` gave.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal

import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from k2.ingest.columnar import to_arrow
from k2.ingest.pipeline import Pipeline
from k2.ingest.validate import Rejection, Rules, decode, validate_batch
from k2.model.batch import RawBatch, position_key
from k2.model.schemas import Quote, Trade
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import quote, trade

SEED = 20_260_106
RANDOM_MESSAGES = 120_000
HYPOTHESIS_EXAMPLES = 250  # batches of 20-40 messages each
FLOW_MESSAGES = 12_000
BATCH = 1_000
MIN_TS, MAX_TS = 946_684_800_000_000, 4_102_444_800_000_000
RULES = Rules(MIN_TS, MAX_TS)
KINDS = {"trade": "market.trades", "quote": "market.quotes"}
FIELDS = {"trade": set(Trade.__struct_fields__), "quote": set(Quote.__struct_fields__)}
REASON = re.compile(
    r"(malformed_json|not_an_object|negative_price|zero_price|non_positive_quantity|negative_quantity"
    r"|timestamp_out_of_range|unknown_side|unknown_asset_class|negative_sequence|unknown_kind)"
    r"|(?:missing_field|invalid_field|empty_field|bad_decimal):(?P<field>[a-z_]+)"
)
# Plain decimal(18,8) digits; a sign only on a zero ("-0" is a valid empty quantity, stored as 0).
PLAIN_DECIMAL = re.compile(r"-?[0-9]{1,10}(?:\.[0-9]{1,8})?")
MONEY = {"trade": ("price", "quantity"), "quote": ("bid_price", "bid_quantity", "ask_price", "ask_quantity")}

# Values that are wrong (or at an edge) for some field: types, sizes, specials, unicode digits, exponents.
ODD_VALUES: list[object] = [
    None,
    True,
    0,
    -1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    10**40,
    1.5,
    1e308,
    -0.0,
    "",
    " ",
    "0",
    "-0",
    "0.000000001",
    "0.00000001",
    "9999999999.99999999",
    "10000000000",
    "1e-8",
    "1E+10",
    "+1",
    "1_000",
    " 1",
    "1 ",
    "NaN",
    "sNaN",
    "-Infinity",
    "inf",
    "\u0661\u0662",
    "1\n2",
    "\x00",
    "A" * 10_000,
    [],
    [1, 2],
    {},
    {"a": {"b": {"c": 1}}},
    MIN_TS - 1,
    MIN_TS,
    MAX_TS - 1,
    MAX_TS,
]
RAW_SPECIALS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e-400", b"1" * 400, b"0." + b"0" * 300 + b"1"]
BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"]


def valid_message(rng: random.Random, kind: str) -> dict:
    n = rng.randrange(1, 10**6)
    if kind == "trade":
        return trade(trade_id=f"t{n}", source_sequence=n, price=f"{rng.randrange(1, 10**6)}.{rng.randrange(100)}")
    return quote(quote_id=f"q{n}", source_sequence=n)


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """1-4 byte-level mutations: bit flip, deletion, duplication, insertion, truncation, swap."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf.append(rng.randrange(256))
            continue
        at = rng.randrange(len(buf))
        match rng.randrange(6):
            case 0:
                buf[at] ^= 1 << rng.randrange(8)
            case 1:
                del buf[at]
            case 2:
                buf[at:at] = buf[at : at + rng.randint(1, 8)]
            case 3:
                buf.insert(at, rng.choice(b'{}[]",:0123456789.-eE\\ntfu\x00\xff'))
            case 4:
                del buf[at:]
            case _:
                buf[at], buf[-1] = buf[-1], buf[at]
    return bytes(buf)


def wrong_field(rng: random.Random, kind: str) -> bytes:
    """A valid message with fields dropped, given odd values, or added."""
    message = valid_message(rng, kind)
    for _ in range(rng.randint(1, 3)):
        name = rng.choice([*sorted(FIELDS[kind]), "extra"])
        if rng.random() < 0.2:
            message.pop(name, None)
        else:
            message[name] = rng.choice(ODD_VALUES)
    return msgspec.json.encode(message)


def raw_token(rng: random.Random, kind: str) -> bytes:
    """A raw JSON token where a field's value goes: NaN/Infinity literals, numbers beyond any float, bad UTF-8."""
    message = valid_message(rng, kind)
    name = rng.choice(sorted(FIELDS[kind]))
    message[name] = "@@TOKEN@@"
    token = rng.choice(RAW_SPECIALS) if rng.random() < 0.5 else b'"x' + rng.choice(BAD_UTF8) + b'y"'
    return msgspec.json.encode(message).replace(b'"@@TOKEN@@"', token)


def deep(rng: random.Random, kind: str) -> bytes:
    depth = rng.choice([10, 100, 1_000, 10_000, 100_000])
    if rng.random() < 0.5:
        return b"[" * depth + b"]" * depth
    message = valid_message(rng, kind)
    message["vendor_data"] = "@@TOKEN@@"
    nested = b'{"a":' * depth + b"1" + b"}" * depth
    return msgspec.json.encode(message).replace(b'"@@TOKEN@@"', nested)


def random_bytes(rng: random.Random, kind: str) -> bytes:
    return rng.randbytes(rng.randrange(0, 300))


def mutated_json(rng: random.Random, kind: str) -> bytes:
    return mutate_bytes(rng, msgspec.json.encode(valid_message(rng, kind)))


GENERATORS: list[Callable[[random.Random, str], bytes]] = [
    random_bytes,
    mutated_json,
    mutated_json,
    wrong_field,
    wrong_field,
    raw_token,
    deep,
]


def generated_batches(seed: int, count: int) -> Iterator[tuple[str, RawBatch]]:
    """`count` messages in batches of one kind each, as (kind, batch); the same seed gives the same bytes."""
    rng = random.Random(seed)
    offsets = Counter[str]()
    for start in range(0, count, BATCH):
        kind = rng.choice(("trade", "quote"))
        values = [rng.choice(GENERATORS)(rng, kind) for _ in range(min(BATCH, count - start))]
        topic = KINDS[kind]
        first = offsets[topic]
        offsets[topic] += len(values)
        yield kind, RawBatch(topic, 0, list(range(first, first + len(values))), values)


def check_batch(kind: str, raw: RawBatch, reasons: Counter[str]) -> None:
    """Validate one batch and check every message is accounted for exactly once, as the exact path judges it."""
    batch = validate_batch(raw, kind, RULES)  # type: ignore[arg-type]
    assert len(batch.records) + len(batch.dead_letters) == len(raw.values)
    dead_at = [d.source_offset for d in batch.dead_letters]
    assert sorted(batch.offsets + dead_at) == raw.offsets, "a message lost or counted twice"
    position = {offset: i for i, offset in enumerate(raw.offsets)}
    for letter in batch.dead_letters:
        value = raw.values[position[letter.source_offset]]
        assert letter.raw == value and letter.kind == kind
        match = REASON.fullmatch(letter.reason)
        assert match, f"not a documented reason: {letter.reason!r} for {value[:200]!r}"
        assert match["field"] is None or match["field"] in FIELDS[kind], letter.reason
        exact = decode(value, kind, RULES)  # type: ignore[arg-type]
        assert isinstance(exact, Rejection) and exact.reason == letter.reason, (value[:200], letter.reason, exact)
        reasons[letter.reason] += 1
    for offset, row in zip(batch.offsets, batch.records, strict=True):
        value = raw.values[position[offset]]
        exact = decode(value, kind, RULES)  # type: ignore[arg-type]
        assert not isinstance(exact, Rejection), (value[:200], exact)
        assert row.exchange and row.symbol and row.currency
        assert row.trade_id if kind == "trade" else row.quote_id  # type: ignore[union-attr]
        assert MIN_TS <= row.timestamp < MAX_TS
        for name in MONEY[kind]:
            text = getattr(row, name)
            assert text is None or (PLAIN_DECIMAL.fullmatch(text) and Decimal(text) >= 0), (name, text)
            assert text is None or Decimal(text) == getattr(exact, name)
        reasons["row"] += 1
    to_arrow(batch)


@pytest.mark.slow
def test_generated_malformed_messages_are_each_accounted_for():
    first = [b.values for _, b in generated_batches(SEED, 2 * BATCH)]
    assert first == [b.values for _, b in generated_batches(SEED, 2 * BATCH)], "the generator is not reproducible"
    reasons: Counter[str] = Counter()
    began = time.perf_counter()
    for kind, raw in generated_batches(SEED, RANDOM_MESSAGES):
        check_batch(kind, raw, reasons)
    elapsed = time.perf_counter() - began
    assert reasons.total() == RANDOM_MESSAGES
    assert reasons["row"] < RANDOM_MESSAGES // 5, "most fuzzed messages should be rejected"
    assert len(reasons) > 20, f"too few distinct outcomes: {reasons}"
    print(f"fuzz: {RANDOM_MESSAGES} messages in {elapsed:.1f}s; {reasons.most_common()}")


# --- hypothesis: plausible structure, wrong parts ----------------------------------------------------------------

odd = st.one_of(
    st.sampled_from(ODD_VALUES),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
plausible_ts = st.one_of(st.integers(MIN_TS, MAX_TS - 1), st.integers())
money = st.one_of(st.decimals(places=8, allow_nan=False, allow_infinity=False).map(str), odd)


@st.composite
def plausible(draw: st.DrawFn, kind: str) -> bytes:
    base = (trade if kind == "trade" else quote)()
    changes = {
        "exchange": st.sampled_from(["XNAS", "", "x" * 300]),
        "symbol": st.text(max_size=8),
        "asset_class": st.sampled_from(["equities", "crypto", "EQUITIES", "bond", ""]),
        "side": st.sampled_from(["BUY", "SELL", "SELL_SHORT", "UNKNOWN", "buy", "HOLD", ""]),
        "timestamp": plausible_ts,
        "ingestion_timestamp": st.one_of(st.none(), plausible_ts),
        "source_sequence": st.one_of(st.none(), st.integers()),
        "trade_conditions": st.one_of(st.lists(st.text(max_size=3), max_size=3), odd),
        "vendor_data": st.one_of(st.none(), st.dictionaries(st.text(max_size=4), st.text(max_size=4)), odd),
        **dict.fromkeys(MONEY[kind], money),
    }
    for name in draw(st.lists(st.sampled_from(sorted(changes)), min_size=1, max_size=4, unique=True)):
        if name in base or draw(st.booleans()):
            base[name] = draw(st.one_of(changes[name], odd))
    for name in draw(st.lists(st.sampled_from(sorted(base)), max_size=2, unique=True)):
        del base[name]
    encoded = msgspec.json.encode(base)
    return mutate_bytes(random.Random(draw(st.integers(0, 2**32))), encoded) if draw(st.booleans()) else encoded


@pytest.mark.slow
def test_plausible_but_wrong_messages_are_each_accounted_for():
    reasons: Counter[str] = Counter()
    sent = 0

    @hsettings(
        max_examples=HYPOTHESIS_EXAMPLES,
        derandomize=True,  # the same examples on every run
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        st.sampled_from(["trade", "quote"]).flatmap(
            lambda k: st.tuples(st.just(k), st.lists(plausible(k), min_size=20, max_size=40))
        )
    )
    def check(case: tuple[str, list[bytes]]) -> None:
        nonlocal sent
        kind, values = case
        if values:
            check_batch(kind, RawBatch(KINDS[kind], 0, list(range(len(values))), values), reasons)
            sent += len(values)

    check()
    assert reasons.total() == sent > HYPOTHESIS_EXAMPLES * 10
    assert len(reasons) > 20, f"too few distinct outcomes: {reasons}"
    print(f"hypothesis: {sent} messages; {reasons.most_common()}")


def test_fuzzed_messages_through_the_real_flow_are_conserved(settings):
    rng = random.Random(SEED + 1)
    next_offset = Counter[str]()
    batches: list[RawBatch] = []
    # source position -> the validation's reason: the pipeline's, which tells Confluent-framed messages (first byte
    # 0, `k2.formats`) from JSON by their bytes, as the flow does
    verdicts: dict[tuple[str, int, int], str] = {}
    pipeline = Pipeline(settings)
    for i, (kind, generated) in enumerate(generated_batches(SEED + 1, FLOW_MESSAGES)):
        values = list(generated.values)
        values[::5] = [msgspec.json.encode(valid_message(rng, kind)) for _ in values[::5]]  # work for dedupe too
        topic, partition = KINDS[kind], i % 3
        key = position_key(topic, partition)
        first = next_offset[key]
        next_offset[key] += len(values)
        raw = RawBatch(topic, partition, list(range(first, first + len(values))), values)
        batches.append(raw)
        dead = pipeline.validate(raw).dead_letters
        verdicts.update({(topic, partition, d.source_offset): d.reason for d in dead})

    landed = run_ingest(settings, batches)

    dead = landed.tables["dead_letters"]
    columns = ("source_topic", "source_partition", "source_offset", "reason")
    landed_verdicts = {(t, p, o): r for t, p, o, r in zip(*(dead[c].to_pylist() for c in columns), strict=True)}
    assert landed_verdicts == verdicts
    rows = Counter[str]()
    for name in ("trades", "quotes"):
        table = landed.tables[name]
        rows.update(
            position_key(t, p)
            for t, p in zip(table["source_topic"].to_pylist(), table["source_partition"].to_pylist(), strict=True)
        )
    dead_by_key = Counter(position_key(t, p) for t, p, _ in landed_verdicts)
    for key, messages in next_offset.items():
        assert landed.messages[key] == messages, key
        assert rows[key] + dead_by_key[key] + landed.duplicates.get(key, 0) == messages, key
    assert rows.total() > FLOW_MESSAGES // 10, "the valid share should have landed"
