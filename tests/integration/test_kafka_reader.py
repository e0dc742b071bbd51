"""The compiled Kafka reader (k2.kafka.reader) on a real broker.

Oracle: the messages this test writes. The reader's batches, through the pipeline's validation, give exactly the rows,
offsets and dead letters of the same bytes read by confluent-kafka and validated whole in Python; every offset is
taken once and in order; a reader left untaken waits without losing anything; a Kafka error is raised; a panic
injected in the reading thread or in validation (`K2_NATIVE_FAILPOINT`) is an error or the exact path, never a crash.
"""

from __future__ import annotations

import random
import time

import pyarrow as pa
import pytest
from confluent_kafka import Consumer, TopicPartition
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from k2.flow.kafka_source import KafkaSource
from k2.ingest.pipeline import Pipeline
from k2.kafka.producer import publish
from k2.kafka.reader import PartitionReader, ReadError
from k2.model.batch import RawBatch
from k2.ops import tracing
from k2.ops.config import load_settings
from tests.fixtures.market import DROP, T0, quote, trade, wire
from tests.fixtures.traces import from_sdk


def _messages(kind: str, count: int, seed: int) -> tuple[list[bytes], set[int]]:
    """`count` messages, mostly valid, with refused ones mixed in; and the indices of those refused."""
    rng = random.Random(seed)
    make = trade if kind == "trade" else quote
    identity = "trade_id" if kind == "trade" else "quote_id"
    refused_kinds = [
        b"{oops",
        b"",
        b"[1, 2]",
        b"\x00\x00\x00\x00\x07framed",  # a Confluent frame with a schema id nobody knows
        wire(make(symbol=DROP)),
        wire(make(timestamp=T0 // 1_000)),  # milliseconds, not µs: out of range
        wire(trade(price="-1") if kind == "trade" else quote(bid_price="abc")),
    ]
    messages, refused = [], set()
    for i in range(count):
        if rng.random() < 0.05:
            refused.add(i)
            messages.append(rng.choice(refused_kinds))
        elif rng.random() < 0.02:
            # accepted, but a spelling the compiled path leaves to Python's Decimal
            price = {"price": "1.5e2"} if kind == "trade" else {"bid_price": "1.87E2"}
            messages.append(wire(make(**{identity: f"x{i}", "source_sequence": i + 1, **price})))
        else:
            messages.append(wire(make(**{identity: f"x{i}", "source_sequence": i + 1, "timestamp": T0 + i})))
    return messages, refused


def _read_with_confluent(bootstrap: str, topic: str, count: int) -> RawBatch:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "k2-test", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    messages: list = []
    deadline = time.monotonic() + 60
    while len(messages) < count and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(1_000, timeout=0.5) if m.error() is None]
    consumer.close()
    offsets = [m.offset() for m in messages]
    values = [m.value() or b"" for m in messages]
    return RawBatch(topic, 0, offsets, values, [m.timestamp()[1] * 1_000 for m in messages])


def _take_all(reader: PartitionReader, count: int) -> list[RawBatch]:
    batches: list[RawBatch] = []
    deadline = time.monotonic() + 60
    while sum(len(b.offsets) for b in batches) < count:
        assert time.monotonic() < deadline, "the reader did not deliver every message in 60 s"
        batch = reader.take()
        if batch is None:
            time.sleep(0.005)
        else:
            batches.append(batch)
    return batches


def _take_into(reader: PartitionReader, taken: list[RawBatch]) -> None:
    """Take batches into `taken` until the reader raises (fails the test after 60 s without an error)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batch = reader.take()
        if batch is None:
            time.sleep(0.005)
        else:
            taken.append(batch)
    pytest.fail("the reader raised no error in 60 s")


@pytest.mark.parametrize("kind", ["trade", "quote"])
def test_the_readers_batches_give_the_exact_paths_rows_and_dead_letters(kafka_bootstrap, kafka_topic, kind):
    topic = kafka_topic(prefix=f"reader-{kind}s")
    messages, refused = _messages(kind, 3_000, seed=17)
    publish(kafka_bootstrap, ((topic, b"one-partition", value) for value in messages))
    pipeline = Pipeline(load_settings({}))
    assert pipeline.reader_kind(topic) == kind

    reader = PartitionReader(kafka_bootstrap, topic, 0, batch_size=256, kind=kind, rules=pipeline.rules).start(
        0, end=len(messages)
    )
    batches = _take_all(reader, len(messages))
    reader.close()
    assert [o for b in batches for o in b.offsets] == list(range(len(messages)))  # each offset once, in order
    assert any(b.accepted is not None and b.accepted.left for b in batches)  # mixed batches were exercised
    compiled = [pipeline.validate(b) for b in batches]

    reference = pipeline.validate(_read_with_confluent(kafka_bootstrap, topic, len(messages)))
    assert reference.records.table.num_rows == len(messages) - len(refused)  # the test's own count
    assert sorted(d.source_offset for d in reference.dead_letters) == sorted(refused)
    rows = pa.concat_tables([b.records.table for b in compiled])
    assert rows.equals(reference.records.table)
    assert [o for b in compiled for o in b.offsets] == reference.offsets
    assert [t for b in compiled for t in b.source_timestamps] == reference.source_timestamps
    assert [d for b in compiled for d in b.dead_letters] == reference.dead_letters
    assert all(b.messages_in == len(b.records) + len(b.dead_letters) for b in compiled)


def test_a_reader_left_untaken_waits_and_loses_nothing(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(prefix="reader-trades")
    messages = [wire(trade(trade_id=f"w{i}", source_sequence=i + 1)) for i in range(20_000)]
    publish(kafka_bootstrap, ((topic, b"k", value) for value in messages))
    pipeline = Pipeline(load_settings({}))
    reader = PartitionReader(
        kafka_bootstrap, topic, 0, batch_size=100, kind="trade", rules=pipeline.rules, queued_batches=2
    ).start(0)
    time.sleep(1.0)  # the reader fills its queue and waits
    first = _take_all(reader, 1)
    assert first[0].offsets[0] == 0
    rest = _take_all(reader, len(messages) - len(first[0].offsets))
    reader.close()
    offsets = [o for b in first + rest for o in b.offsets]
    assert offsets == list(range(len(messages)))


def test_closing_a_reader_that_waits_on_a_full_queue_returns(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(prefix="reader-trades")
    publish(kafka_bootstrap, ((topic, b"k", wire(trade(trade_id=f"c{i}"))) for i in range(5_000)))
    reader = PartitionReader(kafka_bootstrap, topic, 0, batch_size=50, queued_batches=1).start(0)
    time.sleep(0.5)
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 5


def test_a_position_the_log_does_not_hold_is_an_error_not_a_jump(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(prefix="reader-trades")
    publish(kafka_bootstrap, ((topic, b"k", wire(trade(trade_id=f"e{i}"))) for i in range(100)))
    reader = PartitionReader(kafka_bootstrap, topic, 0, batch_size=50).start(1_000)  # beyond the log's end
    with pytest.raises(ReadError, match="AutoOffsetReset"):  # never a silent jump to the end
        _take_all(reader, 1)
    reader.close()


def test_the_flows_reader_traces_each_batch_it_returns_and_no_empty_poll(kafka_bootstrap, kafka_topic, settings):
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing(settings, exporter=exporter)
    try:
        topic = kafka_topic(prefix="traced-trades")
        source = KafkaSource(kafka_bootstrap, [topic], batch_size=100, tail=True)
        (part,) = source.list_parts()
        reader = source.build_part("read", part, None)
        returned: list[RawBatch] = []
        for first, count in ((0, 10), (10, 15), (25, 5)):
            publish(kafka_bootstrap, ((topic, b"k", b"{}") for _ in range(count)))
            deadline = time.monotonic() + 30
            while sum(len(b.offsets) for b in returned) < first + count:
                assert time.monotonic() < deadline
                returned += reader.next_batch()  # mostly nothing ready: an empty poll
                time.sleep(0.002)
        reader.close()
    finally:
        reads = [s for s in from_sdk(exporter.get_finished_spans()) if s.name == "read"]
        tracing.shutdown_tracing()
    assert [o for b in returned for o in b.offsets] == list(range(30))
    fields = ("topic", "partition", "first_offset", "next_offset", "messages")
    expected = [(topic, 0, b.offsets[0], b.next_offset, len(b.offsets)) for b in returned]
    assert [tuple(s.get(k) for k in fields) for s in reads] == expected


def test_a_panic_in_the_reading_thread_is_a_read_error_and_loses_nothing(kafka_bootstrap, kafka_topic, monkeypatch):
    topic = kafka_topic(prefix="reader-trades")
    messages = [wire(trade(trade_id=f"p{i}", source_sequence=i + 1)) for i in range(1_000)]
    publish(kafka_bootstrap, ((topic, b"k", value) for value in messages))
    pipeline = Pipeline(load_settings({}))
    monkeypatch.setenv("K2_NATIVE_FAILPOINT", "reader-panic-at:600")  # read when the reading starts
    reader = PartitionReader(kafka_bootstrap, topic, 0, batch_size=100, kind="trade", rules=pipeline.rules).start(0)
    monkeypatch.delenv("K2_NATIVE_FAILPOINT")
    taken: list[RawBatch] = []
    with pytest.raises(ReadError, match="panicked"):
        _take_into(reader, taken)  # what was read before the panic is taken first, then the error
    reader.close()
    delivered = [o for b in taken for o in b.offsets]
    assert delivered == list(range(len(delivered))) and 0 < len(delivered) <= 600  # in order, the panic's chunk not
    # The process lives on: a reader started where the delivered messages end reads the rest, each once.
    rest = PartitionReader(kafka_bootstrap, topic, 0, batch_size=100, kind="trade", rules=pipeline.rules)
    rest.start(len(delivered), end=len(messages))
    remaining = _take_all(rest, len(messages) - len(delivered))
    rest.close()
    assert delivered + [o for b in remaining for o in b.offsets] == list(range(len(messages)))


def test_a_panic_in_validation_leaves_its_chunk_to_the_exact_path(kafka_bootstrap, kafka_topic, monkeypatch, caplog):
    topic = kafka_topic(prefix="reader-trades")
    messages, refused = _messages("trade", 500, seed=23)
    publish(kafka_bootstrap, ((topic, b"k", value) for value in messages))
    pipeline = Pipeline(load_settings({}))
    monkeypatch.setenv("K2_NATIVE_FAILPOINT", "validation-panic")
    reader = PartitionReader(kafka_bootstrap, topic, 0, batch_size=100, kind="trade", rules=pipeline.rules)
    reader.start(0, end=len(messages))
    monkeypatch.delenv("K2_NATIVE_FAILPOINT")
    batches = _take_all(reader, len(messages))
    reader.close()
    assert all(b.accepted is None for b in batches)  # no chunk validated natively: each went whole to Python
    assert "native validation panicked" in caplog.text
    validated = [pipeline.validate(b) for b in batches]
    assert sum(len(b.records) for b in validated) == len(messages) - len(refused)  # the test's own count
    assert sorted(d.source_offset for b in validated for d in b.dead_letters) == sorted(refused)
