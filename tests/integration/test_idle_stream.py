"""An idle stream on a real broker: the flow, tailing Kafka as a real process, commits its last dead letter without
any further message, because its idle partitions send ticks (`k2.model.batch.tick`) that keep the sink's timed commits
running."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from k2.flow.kafka_source import KafkaSource
from k2.kafka.admin import partitions_of, watermarks
from k2.kafka.producer import publish
from k2.storage.catalog import DEAD_LETTERS, TRADES, ensure_tables, open_catalog, read_table
from tests.fixtures.market import trade, wire
from tests.integration.test_kafka_ingest import settings_on_new_topics
from tests.soak.flow_process import flow_log_tail, flow_process

DEAD_LETTER_WITHIN = 30.0  # side tables commit every 10 commit intervals (1 s here): well inside this when idle


def wait_for(found: Callable[[], list], timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while not (rows := found()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return rows


def test_a_rejected_message_lands_while_the_stream_stays_idle(tmp_path, kafka_bootstrap, kafka_topic):
    # Tailing (flow_process runs it so) with the default commit interval of 1 s.
    settings = msgspec.structs.replace(
        settings_on_new_topics(tmp_path, kafka_bootstrap, kafka_topic, 2), epoch_seconds=1.0
    )
    trades = settings.trades_topic
    messages = [wire(trade(trade_id=f"t{i}", source_sequence=i + 1)) for i in range(5)] + [b"{oops"]
    publish(kafka_bootstrap, ((trades, b"XNAS:AAPL", value) for value in messages))  # one key: one partition
    marks = watermarks(kafka_bootstrap, partitions_of(kafka_bootstrap, [trades]))
    (written,) = [int(key.rpartition("/")[2]) for key, (_, high) in marks.items() if high]
    tables = ensure_tables(open_catalog(settings), settings.namespace)  # before the flow: readable from the start
    # The real process with recovery on, tailing Kafka, stopped with Ctrl-C at the end (see tests/soak).
    with flow_process(settings, tmp_path, metrics_port=0) as process:
        rows = wait_for(lambda: read_table(tables[TRADES], ["source_offset"]).to_pylist(), 120)
        assert len(rows) == 5, flow_log_tail(tmp_path)
        # From here on nothing is produced: only the idle partitions' ticks can bring the dead letter in.
        dead = wait_for(lambda: read_table(tables[DEAD_LETTERS]).to_pylist(), DEAD_LETTER_WITHIN)
        assert process.poll() is None, flow_log_tail(tmp_path)
    # Not asserted here: that Ctrl-C ends the flow within stop()'s 30 s. In one CI run (of 6) the flow went on
    # ticking and committing for 20 s after SIGINT and was killed; see the session-10 note on issue 3.
    assert [(d["source_topic"], d["source_partition"], d["source_offset"], d["reason"]) for d in dead] == [
        (trades, written, 5, "malformed_json")
    ]


def test_an_idle_partition_ticks_only_an_interval_after_its_last_batch(kafka_bootstrap, kafka_topic):
    topic = kafka_topic(1, prefix="trades")
    publish(kafka_bootstrap, ((topic, b"k", b"%d" % i) for i in range(3_000)))
    source = KafkaSource(kafka_bootstrap, [topic], batch_size=100, tail=True, idle_tick_seconds=0.5)
    (part,) = source.list_parts()
    reader = source.build_part("read", part, None)
    emitted: list[tuple[float, int]] = []  # (when, messages) of every batch; 0 messages: a tick
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            emitted += [(time.monotonic(), len(batch.offsets)) for batch in reader.next_batch()]
            read = sum(count for _, count in emitted)
            if read == 3_000 and all(count == 0 for _, count in emitted[-3:]):  # everything read, then three ticks
                break
            time.sleep(0.005)
    finally:
        reader.close()
    assert sum(count for _, count in emitted) == 3_000
    assert reader.snapshot() == 3_000  # ticks move no position
    ticks = [i for i, (_, count) in enumerate(emitted) if not count]
    assert len(ticks) >= 3
    for i in ticks:  # never while batches come: a tick only after an interval with nothing emitted
        assert i == 0 or emitted[i][0] - emitted[i - 1][0] >= 0.45  # (the reader reads its clock a little earlier)
