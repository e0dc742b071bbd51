"""Avro and Protobuf in the Confluent wire format on the real broker, with the real schema registry: messages
written by confluent-kafka's reference serializers land as the same rows, dead letters and gap events as the same
messages in JSON, a topic may mix the formats, and every message is a row, a dead letter or a counted duplicate."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest
from bytewax.testing import run_main
from confluent_kafka.schema_registry import SchemaRegistryClient

from flows.ingest import build_flow
from k2.flow.sources import source_from_settings
from k2.formats import shipped
from k2.kafka.producer import dead_letter_publisher, instrument_key, publish
from k2.ops.reconcile import reconcile
from k2.storage.catalog import DEAD_LETTERS, QUOTES, SEQUENCE_GAPS, TRADES
from tests.fixtures.flow import kafka_settings, read_landed
from tests.fixtures.market import T0, quote, trade, wire

pytestmark = pytest.mark.integration

SYMBOLS = ("AAPL", "MSFT", "NVDA")
# Columns that name where a row came from, which differ between the topics of the formats by design
WHERE = {"source_topic"}


def feed() -> tuple[list[dict], list[dict], dict[str, int]]:
    """Trades and quotes with a gap, a redelivery and invalid messages of each kind; and what each is expected to
    become (the oracle, from the messages themselves)."""
    trades, quotes = [], []
    for n in range(1, 61):
        symbol = SYMBOLS[n % 3]
        seq = n if n < 40 else n + 1  # a gap of one after 39, per symbol that reaches it
        price = Decimal(100) + Decimal(n) / Decimal(10**8)  # eighth decimal: exact or not at all
        size = f"{Decimal(n) / 1000}"
        trades.append(trade(symbol=symbol, trade_id=f"t{n}", source_sequence=seq, timestamp=T0 + n,
                            price=f"{price}", quantity=size, ingestion_timestamp=T0 + n + 7))  # fmt: skip
        quotes.append(quote(symbol=symbol, quote_id=f"q{n}", source_sequence=n, timestamp=T0 + n,
                            ingestion_timestamp=T0 + n + 9, bid_price=None if n % 10 == 0 else "187.24"))  # fmt: skip
    trades.append(dict(trades[5]))  # a redelivery: a counted duplicate
    invalid = [
        trade(symbol="AAPL", trade_id="bad1", price="-1", source_sequence=None, ingestion_timestamp=T0),
        trade(symbol="MSFT", trade_id="bad2", quantity="0", source_sequence=None, ingestion_timestamp=T0),
        trade(symbol="NVDA", trade_id="bad3", timestamp=4_200_000_000_000_000, source_sequence=None),
    ]
    trades.extend(invalid)
    expected = {"trades": 60, "quotes": 60, "duplicates": 1, "dead_letters": 3}
    return trades, quotes, expected


def produce(bootstrap: str, registry: str, fmt: str, topics: tuple[str, str], trades, quotes, extra=()) -> int:
    client = SchemaRegistryClient({"url": registry})
    sent = []
    for kind, topic, messages in (("trade", topics[0], trades), ("quote", topics[1], quotes)):
        write = (lambda v: v) if fmt == "json" else shipped.serializer(fmt, kind, client, topic)  # type: ignore[arg-type]
        mixed = [shipped.serializer(f, kind, client, topic) for f in shipped.FORMATS] if fmt == "mixed" else None
        for i, message in enumerate(messages):
            value = wire(message)
            if mixed is not None:  # json, avro, protobuf, json, ...
                write = (lambda v: v) if i % 3 == 0 else mixed[i % 3 - 1]
            encoded = write(value)
            sent.append((topic, instrument_key(value), encoded))
    sent.extend((topics[0], b"XNAS:AAPL", value) for value in extra)
    return publish(bootstrap, sent)


def ingest(tmp_path, bootstrap: str, registry: str, topics: tuple[str, str, str]):
    settings = kafka_settings(tmp_path / topics[0], bootstrap, *topics, schema_registry_url=registry)
    run_main(build_flow(source_from_settings(settings), settings, dead_letter_topic=dead_letter_publisher(settings)))
    assert all(report.balanced for report in reconcile(settings))
    return read_landed(settings)


def comparable(table: pa.Table, drop: set[str] = WHERE) -> pa.Table:
    """The columns that do not name where a row landed, in one order: gap events of trades and of quotes can share
    a (partition, offset) (their topics differ per format and are dropped), so `kind` orders them too."""
    keep = [c for c in table.column_names if c not in drop]
    order = [c for c in ("kind", "source_partition", "source_offset") if c in keep]
    return table.select(keep).sort_by([(c, "ascending") for c in order])


def test_every_format_and_a_mixed_topic_land_what_json_lands(tmp_path, kafka_bootstrap, kafka_topic,
                                                             schema_registry_url):  # fmt: skip
    trades, quotes, expected = feed()
    unknown_id = b"\x00\x7f\xff\xff\xfe" + b"\x02ab"  # a schema id no registry here has given out
    landed = {}
    for fmt in ("json", "avro", "protobuf", "mixed"):
        topics = (kafka_topic(2, prefix=f"{fmt}-trades"), kafka_topic(2, prefix=f"{fmt}-quotes"), kafka_topic(1))
        extra = [unknown_id] if fmt == "mixed" else []
        sent = produce(kafka_bootstrap, schema_registry_url, fmt, topics[:2], trades, quotes, extra)
        assert sent == len(trades) + len(quotes) + len(extra)
        landed[fmt] = ingest(tmp_path, kafka_bootstrap, schema_registry_url, topics)
        tables = landed[fmt].tables
        rows = tables[TRADES].num_rows + tables[QUOTES].num_rows + tables[DEAD_LETTERS].num_rows
        assert rows + sum(landed[fmt].duplicates.values()) == sent, fmt  # conservation
        assert sum(landed[fmt].duplicates.values()) == expected["duplicates"], fmt

    json_tables = landed["json"].tables
    assert json_tables[TRADES].num_rows == expected["trades"] and json_tables[QUOTES].num_rows == expected["quotes"]
    assert sorted(json_tables[DEAD_LETTERS]["reason"].to_pylist()) == [
        "negative_price", "non_positive_quantity", "timestamp_out_of_range",
    ]  # fmt: skip
    assert json_tables[SEQUENCE_GAPS].num_rows > 0
    assert sum(json_tables[TRADES]["price"].to_pylist()) == sum(
        Decimal(t["price"]) for t in trades[:60]
    )  # the oracle: the messages sent
    for fmt in ("avro", "protobuf", "mixed"):
        tables = landed[fmt].tables
        for name in (TRADES, QUOTES, SEQUENCE_GAPS):
            assert comparable(tables[name]).equals(comparable(json_tables[name])), (fmt, name)
        dead = {"source_topic", "raw", "detail", "ingested_at", "source_timestamp"}
        letters = tables[DEAD_LETTERS]
        if fmt == "mixed":
            assert letters.filter(pa.compute.equal(letters["reason"], "unknown_schema")).num_rows == 1
            letters = letters.filter(pa.compute.not_equal(letters["reason"], "unknown_schema"))
        assert comparable(letters, dead).equals(comparable(json_tables[DEAD_LETTERS], dead)), fmt
