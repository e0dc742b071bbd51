"""JSON in another shape (k2.ingest.mapping): a vendor's messages land as the same exact rows as K2's own, and
what does not fit is a dead letter with K2's reason and the vendor's bytes."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from k2.ingest.mapping import Mapper, MappingError, load_mappings
from k2.ingest.pipeline import Pipeline
from k2.model.batch import RawBatch
from k2.ops.config import load_settings
from k2.storage.catalog import DEAD_LETTERS, TRADES
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import T0, raw_batch, trade

TOPIC = "vendor.trades"
MAPPING = """
topics:
  vendor.trades:
    kind: trade
    fields:
      exchange: {const: BINANCE}
      asset_class: {const: crypto}
      currency: {const: USDT}
      symbol: sym
      price: px
      quantity: sz
      timestamp: {path: ts, time: iso8601}
      trade_id: id
      side: {path: s, values: {b: BUY, s: SELL}}
      source_sequence: meta.seq
"""
ISO_T0 = "2026-01-05T14:30:00Z"  # T0 in tests.fixtures.market


def vendor(i: int, **changes) -> bytes:
    message = {"sym": "BTCUSDT", "px": "97000.5", "sz": 0.25, "ts": ISO_T0, "id": f"v{i}", "s": "b", "meta": {"seq": i}}
    message.update(changes)
    return json.dumps(message).encode()


@pytest.fixture
def mapped_settings(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text(MAPPING)
    return load_settings({}, data_dir=str(tmp_path / "k2"), mapping=str(path), trades_topic=TOPIC, epoch_seconds=0.05)


def test_a_vendor_message_becomes_the_same_row_as_the_native_one(mapped_settings):
    native = trade(exchange="BINANCE", asset_class="crypto", currency="USDT", symbol="BTCUSDT", price="97000.5",
                   quantity="0.25", timestamp=T0, trade_id="v1", side="BUY", source_sequence=1,
                   trade_conditions=[], ingestion_timestamp=None)  # fmt: skip
    pipeline = Pipeline(mapped_settings)
    mapped = pipeline.validate(RawBatch(TOPIC, 0, [0], [vendor(1)]))
    plain = Pipeline(load_settings({})).validate(raw_batch([native]))
    assert not mapped.dead_letters and mapped.records == plain.records


def test_numbers_keep_their_exact_text(mapped_settings):
    # JSON numbers, not strings: 0.1 + 0.2 style values must not go through float on the way.
    value = b'{"sym":"X","px":0.30000000,"sz":12345678.12345678,"ts":"' + ISO_T0.encode() + b'","id":"a","s":"s"}'
    [row] = Pipeline(mapped_settings).validate(RawBatch(TOPIC, 0, [0], [value])).records
    assert (row.price, row.quantity, row.side) == ("0.30000000", "12345678.12345678", "SELL")
    assert Decimal(row.price) == Decimal("0.3")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"[1, 2]", "not_an_object"),
        (json.dumps({"sym": "X", "sz": 1, "ts": ISO_T0, "id": "a", "s": "b"}).encode(), "missing_field:price"),
        (vendor(1, ts="yesterday"), "invalid_field:timestamp"),
        (vendor(1, s="x"), "unknown_side"),
        (vendor(1, px="-1"), "negative_price"),
        (vendor(1, px="1.123456789"), "bad_decimal:price"),
    ],
)
def test_what_does_not_fit_is_a_dead_letter_with_the_vendor_bytes(mapped_settings, value, reason):
    batch = Pipeline(mapped_settings).validate(RawBatch(TOPIC, 0, [7], [value]))
    [dead] = batch.dead_letters
    assert (dead.reason, dead.raw, dead.source_offset) == (reason, value, 7)


@pytest.mark.parametrize(
    ("unit", "value", "micros"),
    [
        ("s", 1_767_623_400, T0),
        ("ms", "1767623400000", T0),
        ("us", T0, T0),
        ("ns", T0 * 1000 + 999, T0),  # K2 keeps µs: nanoseconds floor
        ("s", "1767623400.000001", T0 + 1),
        ("iso8601", "2026-01-05T15:30:00+01:00", T0),
        ("iso8601", "2026-01-05T14:30:00", T0),  # no offset: UTC
    ],
)
def test_times_become_exact_utc_microseconds(tmp_path, unit, value, micros):
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps({"topics": {"t": {"kind": "trade", "fields": {"timestamp": {"path": "ts", "time": unit}}}}})
    )
    out = json.loads(load_mappings(path)["t"].apply(json.dumps({"ts": value}).encode()))
    assert out == {"timestamp": micros}


def test_a_time_that_does_not_land_on_a_microsecond_is_passed_on_for_validation_to_refuse(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(
        json.dumps({"topics": {"t": {"kind": "trade", "fields": {"timestamp": {"path": "ts", "time": "s"}}}}})
    )
    assert json.loads(load_mappings(path)["t"].apply(b'{"ts": "1.0000005"}')) == {"timestamp": "1.0000005"}


@pytest.mark.parametrize(
    "text",
    [
        "topics: {t: {kind: trade, fields: {price: {path: px, const: 1}}}}",  # both
        "topics: {t: {kind: candle, fields: {}}}",  # no such kind
        "topics: {t: {kind: trade, fields: {price: {path: px, time: hours}}}}",
        "topics: {t: {kind: trade, fields: {price: {pth: px}}}}",  # a typo is an error, not a silent default
        "topics: [",
    ],
)
def test_an_unusable_mapping_file_is_refused_at_start(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(MappingError, match=r"bad\.yaml|exactly one"):
        load_mappings(path)


def test_the_flow_lands_a_mapped_topic_exactly(mapped_settings):
    values = [vendor(i, px=f"{97000 + i}.5") for i in range(1, 6)]
    values[2] = b'{"sym": "BTCUSDT"}'  # a dead letter
    values.append(vendor(4, px="97004.5"))  # a redelivery of id v4, sequence 4: a duplicate
    landed = run_ingest(mapped_settings, [RawBatch(TOPIC, 0, list(range(len(values))), values)])
    trades = landed.tables[TRADES]
    assert sorted(trades["trade_id"].to_pylist()) == ["v1", "v2", "v4", "v5"]
    assert sum(trades["price"].to_pylist()) == Decimal("97001.5") + Decimal("97002.5") + Decimal("97004.5") + Decimal(
        "97005.5"
    )
    assert landed.tables[DEAD_LETTERS]["raw"].to_pylist() == [values[2]]
    assert landed.duplicates == {f"{TOPIC}/0": 1}


@given(st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("9999999999.99999999"), places=8))
def test_any_decimal18_8_number_survives_mapping_exactly(price):
    mapper = Mapper("trade", {"price": "px"})
    out = json.loads(mapper.apply(b'{"px": ' + str(price).encode() + b"}"))
    assert Decimal(out["price"]) == price
