"""Avro and Protobuf in the Confluent wire format (k2.formats): the same rows as JSON, exactly, and every refusal a
dead letter with its reason. Messages are written by confluent-kafka's reference serializers; K2 reads the schemas
from a local schema directory (the offline mode) holding the registry's answers."""

from __future__ import annotations

import json
import tempfile
from decimal import Decimal
from pathlib import Path

import msgspec
import pyarrow as pa
import pytest
from google.protobuf import descriptor_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k2.formats import shipped
from k2.formats.frames import any_framed
from k2.formats.resolve import RegistrySchemas
from k2.ingest.pipeline import Pipeline
from k2.model.batch import RawBatch
from k2.model.schemas import Quote, Trade
from k2.ops.breaker import BreakerGaveUp, CircuitBreaker
from k2.ops.config import load_settings
from tests.fixtures.formats import (
    FORMATS,
    avro_writer,
    export,
    memory_registry,
    pipeline_for,
    proto_class,
    proto_writer,
    register,
    schema_id,
)
from tests.fixtures.market import DROP, T0, quote, trade

pytestmark = pytest.mark.unit

CLIENT = memory_registry()
TRADES = {fmt: shipped.serializer(fmt, "trade", CLIENT, "market.trades") for fmt in shipped.FORMATS}
QUOTES = {fmt: shipped.serializer(fmt, "quote", CLIENT, "market.quotes") for fmt in shipped.FORMATS}


def frames(fmt: str, messages: list[dict], kind: str = "trade") -> list[bytes]:
    if fmt == "json":
        return [msgspec.json.encode(m) for m in messages]
    writer = (TRADES if kind == "trade" else QUOTES)[fmt]
    return [writer(msgspec.json.encode(m)) for m in messages]


def outcome(values: list[bytes], directory: Path, topic: str = "market.trades"):
    export(CLIENT, values, directory)
    batch = RawBatch(topic, 0, list(range(len(values))), values)
    return pipeline_for(directory).for_partition().to_arrow(batch)


def reasons(values: list[bytes], directory: Path, topic: str = "market.trades") -> list[str]:
    arrow = outcome(values, directory, topic)
    table = arrow.tables.get("dead_letters")
    return [] if table is None else table["reason"].to_pylist()


decimals = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("9999999999.99999999"), places=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prices=st.lists(decimals, min_size=1, max_size=8),
    quantity=decimals,
    micros=st.integers(min_value=946_684_800_000_000, max_value=4_102_444_799_999_990),  # + up to 7
    sequence=st.none() | st.integers(min_value=0, max_value=2**62),
)
def test_rows_from_every_format_equal_the_json_rows_column_by_column(prices, quantity, micros, sequence):
    messages = [
        trade(trade_id=f"t{i}", price=str(p), quantity=str(quantity), timestamp=micros + i,
              source_sequence=DROP if sequence is None else sequence + i, vendor_data={"venue": "x"})
        for i, p in enumerate(prices)
    ]  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        tables = {fmt: outcome(frames(fmt, messages), Path(directory)).tables for fmt in FORMATS}
    assert set(tables["json"]) == {"trades"}
    expected = pa.array([Decimal(p) for p in prices], pa.decimal128(18, 8))
    assert tables["json"]["trades"]["price"].combine_chunks().equals(expected)  # oracle: the test's own input
    for fmt in shipped.FORMATS:
        assert set(tables[fmt]) == {"trades"}
        for column in tables["json"]["trades"].column_names:
            assert tables[fmt]["trades"][column].equals(tables["json"]["trades"][column]), (fmt, column)


def test_quotes_from_every_format_equal_the_json_rows(tmp_path):
    messages = [
        quote(),
        quote(quote_id="q2", bid_price=DROP, bid_quantity=DROP, source_sequence=2),  # one-sided
        quote(quote_id="q3", bid_price="0", bid_quantity="0", source_sequence=3),  # empty side as zero
        quote(quote_id="q4", bid_price="187.27", source_sequence=4),  # crossed
    ]
    tables = {fmt: outcome(frames(fmt, messages, "quote"), tmp_path, "market.quotes").tables for fmt in FORMATS}
    assert tables["json"]["quotes"]["one_sided"].to_pylist() == [False, True, True, False]
    assert tables["json"]["quotes"]["crossed"].to_pylist() == [False, False, False, True]
    for fmt in shipped.FORMATS:
        assert tables[fmt]["quotes"].equals(tables["json"]["quotes"]), fmt


def test_a_mixed_batch_keeps_every_message_in_offset_order(tmp_path):
    good = [trade(trade_id=f"t{i}", source_sequence=i + 1, timestamp=T0 + i) for i in range(6)]
    values = [
        frames("json", good[0:1])[0],
        frames("avro", good[1:2])[0],
        b"\x00\x00\x00\x03\xe7rest",  # unknown schema id 999
        frames("protobuf", good[2:3])[0],
        frames("avro", [trade(trade_id="bad", price="-1")])[0],
        b'{"not": "a trade"',
        frames("protobuf", good[3:4])[0],
        frames("avro", good[4:5])[0][:-2],  # truncated
        frames("json", good[5:6])[0],
    ]
    arrow = outcome(values, tmp_path)
    assert arrow.tables["trades"]["trade_id"].to_pylist() == ["t0", "t1", "t2", "t3", "t5"]
    assert arrow.tables["trades"]["source_offset"].to_pylist() == [0, 1, 3, 6, 8]
    dead = arrow.tables["dead_letters"]
    assert dead["source_offset"].to_pylist() == [2, 4, 5, 7]
    assert dead["reason"].to_pylist() == [
        "unknown_schema", "negative_price", "malformed_json", "schema_mismatch:avro_decode",
    ]  # fmt: skip
    assert dead["raw"].to_pylist() == [values[2], values[4], values[5], values[7]]  # the bytes the topic delivered
    assert arrow.source_offsets == list(range(len(values))) and arrow.next_offset == len(values)


def test_frames_that_do_not_decode_are_dead_letters_with_their_reason(tmp_path):
    avro = frames("avro", [trade()])[0]
    proto = frames("protobuf", [trade()])[0]
    index_out_of_range = proto[:5] + b"\x02\x0a" + proto[6:]  # message-index list [5]: the file has one message
    assert reasons(
        [b"\x00\x00", avro[:-1], avro + b"\x00", proto[:5] + b"\x00\xff", index_out_of_range, b"\x00\x00\x00\x03\xe7"],
        tmp_path,
    ) == [
        "schema_mismatch:frame",
        "schema_mismatch:avro_decode",
        "schema_mismatch:trailing_bytes",
        "schema_mismatch:protobuf_decode",
        "schema_mismatch:message_index",
        "unknown_schema",
    ]


def test_without_a_registry_or_schema_directory_a_frame_names_an_unknown_schema():
    batch = RawBatch("market.trades", 0, [0, 1], [frames("avro", [trade()])[0], frames("json", [trade()])[0]])
    validated = Pipeline(load_settings({})).validate(batch)
    assert [d.reason for d in validated.dead_letters] == ["unknown_schema"]
    assert "K2_SCHEMA_REGISTRY_URL" in validated.dead_letters[0].detail and len(validated.records) == 1


AVRO_TRADE = json.loads(shipped.avro_schema("trade"))


def avro_variant(**types) -> dict:
    """K2's trade schema with some fields' types replaced (None: the field left out)."""
    schema = json.loads(json.dumps(AVRO_TRADE))
    schema["fields"] = [
        {**f, "type": types[f["name"]]} if f["name"] in types else f
        for f in schema["fields"]
        if types.get(f["name"], "") is not None
    ]
    return schema


def test_avro_fixed_decimals_and_millisecond_times_are_exact(tmp_path):
    fixed = {"type": "fixed", "name": "Money", "size": 12, "logicalType": "decimal", "precision": 24, "scale": 10}
    write = avro_writer(
        CLIENT, avro_variant(price=fixed, timestamp={"type": "long", "logicalType": "timestamp-millis"})
    )
    base = {k: v for k, v in trade().items() if k not in ("price", "timestamp")}
    base |= {"quantity": Decimal("100"), "ingestion_timestamp": None}
    values = [
        write({**base, "price": Decimal("187.2500000000"), "timestamp": T0 // 1000}),
        write({**base, "price": Decimal("187.2500000001"), "timestamp": T0 // 1000 + 1}),  # a 10th decimal
        write({**base, "price": Decimal("12345678901.5"), "timestamp": T0 // 1000 + 2}),  # 11 digits before the point
    ]
    arrow = outcome(values, tmp_path)
    assert arrow.tables["trades"]["price"].to_pylist() == [Decimal("187.25000000")]
    assert arrow.tables["trades"]["timestamp"].cast(pa.int64()).to_pylist() == [T0]
    assert arrow.tables["dead_letters"]["reason"].to_pylist() == ["bad_decimal:price", "bad_decimal:price"]


def test_avro_floats_and_missing_fields_are_refused_with_reasons(tmp_path):
    no_price = avro_writer(CLIENT, avro_variant(price=None))
    as_double = avro_writer(CLIENT, avro_variant(price="double"))
    base = {**trade(), "quantity": Decimal("100"), "ingestion_timestamp": None}
    values = [no_price({k: v for k, v in base.items() if k != "price"}), as_double({**base, "price": 1.5})]
    assert reasons(values, tmp_path) == ["missing_field:price", "bad_decimal:price"]


def money_trade_schema() -> descriptor_pb2.FileDescriptorProto:
    """A vendor's trade: price as units + nanos (like google.type.Money), a Timestamp with nanoseconds."""
    file = descriptor_pb2.FileDescriptorProto(name="vendor/trade.proto", package="vendor", syntax="proto3")
    file.dependency.append("google/protobuf/timestamp.proto")
    money = file.message_type.add(name="Money")
    money.field.add(name="units", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    money.field.add(name="nanos", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT32)
    message = file.message_type.add(name="Trade")
    text, nested = descriptor_pb2.FieldDescriptorProto.TYPE_STRING, descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
    for number, name in enumerate(("exchange", "symbol", "asset_class", "currency", "trade_id", "side"), 1):
        message.field.add(name=name, number=number, type=text)
    message.field.add(name="quantity", number=7, type=text)
    message.field.add(name="price", number=8, type=nested, type_name=".vendor.Money")
    message.field.add(name="timestamp", number=9, type=nested, type_name=".google.protobuf.Timestamp")
    return file


def test_protobuf_units_and_nanos_and_timestamps_are_exact(tmp_path):
    cls = proto_class(money_trade_schema(), "vendor.Trade")
    write = proto_writer(CLIENT, cls)

    def message(trade_id: str, units: int, nanos: int, time_nanos: int) -> bytes:
        fields = {k: v for k, v in trade(trade_id=trade_id).items() if isinstance(v, str) and k != "price"}
        found = cls(**fields)
        found.price.units, found.price.nanos = units, nanos
        found.timestamp.seconds, found.timestamp.nanos = T0 // 1_000_000, time_nanos
        return write(found)

    values = [message("a", 187, 250_000_000, 123_456_789), message("b", 1, 1, 0), message("c", 0, 5, 0)]
    assert schema_id(values[0]) == schema_id(values[1]) and values[0][5:6] == b"\x02"  # index list [1]: Trade
    arrow = outcome(values, tmp_path)
    assert arrow.tables["trades"]["price"].to_pylist() == [Decimal("187.25000000")]
    assert arrow.tables["trades"]["timestamp"].cast(pa.int64()).to_pylist() == [T0 + 123_456]  # ns floor to µs
    assert arrow.tables["dead_letters"]["reason"].to_pylist() == ["bad_decimal:price", "bad_decimal:price"]


def test_a_protobuf_schema_without_a_k2_field_is_missing_that_field(tmp_path):
    file = money_trade_schema()
    del file.message_type[1].field[7]  # price
    cls = proto_class(file, "vendor.Trade")
    write = proto_writer(CLIENT, cls, topic="other.trades")
    fields = {k: v for k, v in trade().items() if isinstance(v, str) and k != "price"}
    message = cls(**fields)
    message.timestamp.FromMicroseconds(T0)
    assert reasons([write(message)], tmp_path) == ["missing_field:price"]


def test_a_schema_k2_cannot_read_is_a_dead_letter_naming_it(tmp_path):
    json_schema = register(CLIENT, "json.trades-value", '{"type": "object"}', "JSON")
    frame = b"\x00" + json_schema.to_bytes(4, "big") + b'{"price": 1}'
    (tmp_path / f"{json_schema}.json").write_text(json.dumps({"schema": '{"type": "object"}', "schemaType": "JSON"}))
    assert reasons([frame], tmp_path) == ["unsupported_schema:json"]


def test_a_local_schema_file_that_cannot_be_read_is_a_dead_letter_naming_it(tmp_path):
    (tmp_path / "41.json").write_text("[1, 2")
    (tmp_path / "42.avsc").write_text('{"type": "record", "name": "T", "fields": [{"name": "a", "type": "nope"}]}')
    framed = [b"\x00" + n.to_bytes(4, "big") + b"\x02" for n in (41, 42)]
    assert reasons(framed, tmp_path) == ["unsupported_schema:file", "unsupported_schema:avro"]


def test_a_registry_that_does_not_answer_is_waited_for_never_a_dead_letter():
    # Nothing listens on port 9 (discard) on loopback here: every fetch is refused. The breaker waits; given a
    # bound it gives up with an error, and the batch is not validated at all: no row, no dead letter.
    waited = CircuitBreaker("schema_registry", initial_backoff=0.05, give_up_seconds=0.5)
    pipeline = Pipeline(load_settings({}))
    pipeline.framed.schemas = RegistrySchemas("http://127.0.0.1:9", breaker=waited, timeout=0.2)
    with pytest.raises(BreakerGaveUp):
        pipeline.validate(RawBatch("market.trades", 0, [0], frames("avro", [trade()])))
    assert waited.total_failures >= 2 and pipeline.framed.schemas.fetches == 0


FUZZ_BASE = {fmt: frames(fmt, [trade()])[0] for fmt in shipped.FORMATS}


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(shipped.FORMATS), cut=st.integers(0, 200), noise=st.binary(max_size=40))
def test_damaged_frames_are_rows_or_dead_letters_never_errors(fmt, cut, noise):
    base = FUZZ_BASE[fmt]
    damaged = [base[:cut] + noise, base[: 5 + cut % 3] + noise, base + noise]
    with tempfile.TemporaryDirectory() as directory:
        export(CLIENT, [base], Path(directory))
        batch = pipeline_for(Path(directory)).validate(RawBatch("market.trades", 0, [0, 1, 2], damaged))
    assert len(batch.records) + len(batch.dead_letters) == 3
    assert all(letter.raw in damaged and letter.reason for letter in batch.dead_letters)


@given(st.lists(st.binary(max_size=6)))
def test_a_batch_holds_a_framed_message_when_any_starts_with_zero(values):
    assert any_framed(values) == any(v[:1] == b"\x00" for v in values)


def test_shipped_schemas_carry_the_json_wire_fields():
    for kind, struct in (("trade", Trade), ("quote", Quote)):
        avro = [f["name"] for f in json.loads(shipped.avro_schema(kind))["fields"]]
        proto = [f.name for f in shipped.proto_class(kind).DESCRIPTOR.fields]
        wire = [name for name in struct.__struct_fields__ if name not in ("one_sided", "crossed")]
        assert avro == proto == wire, kind
