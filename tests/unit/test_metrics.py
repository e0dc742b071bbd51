"""The ingest counters move by exactly what the real flow did (TestingSource, temp-dir Iceberg warehouse)."""

from __future__ import annotations

import logging
import subprocess
import sys
import urllib.request

from prometheus_client import REGISTRY

from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from k2.ops.metrics import serve_metrics
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import DROP, quote, raw_batch, trade
from tests.fixtures.net import free_port


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def total(name: str, **match: str) -> float:
    """Sum of every series of `name` whose labels include `match`."""
    return sum(
        s.value
        for family in REGISTRY.collect()
        for s in family.samples
        if s.name == name and match.items() <= s.labels.items()
    )


class Moved:
    """Before/after readings of the registry: the counters are process-wide, other tests move them too."""

    def __init__(self, reader):
        self.reader = reader
        self.before: dict[tuple, float] = {}

    def __call__(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return self.reader(name, **labels) - self.before.get(key, 0.0)

    def mark(self, *queries: tuple[str, dict[str, str]]) -> None:
        for name, labels in queries:
            self.before[(name, tuple(sorted(labels.items())))] = self.reader(name, **labels)


def test_each_outcome_of_a_known_batch_is_counted(settings):
    topic, quotes_topic = "metrics-known.trades", "metrics-known.quotes"
    trades = [
        trade(trade_id="a", source_sequence=1),
        trade(trade_id="b", source_sequence=2),
        b"{oops",
        trade(trade_id="b", source_sequence=2),  # duplicate
        trade(trade_id="c", source_sequence=5),  # gap: 3..4
        trade(trade_id="d", source_sequence=None, side=DROP),  # missing side
    ]
    quotes = [quote(quote_id="q1", source_sequence=1), quote(quote_id="q2", source_sequence=2)]
    trade_series = {"kind": "trade", "topic": topic, "partition": "3"}
    quote_series = {"kind": "quote", "topic": quotes_topic, "partition": "0"}
    moved = Moved(sample)
    queries = [
        ("k2_ingest_messages_total", trade_series),
        ("k2_ingest_valid_messages_total", trade_series),
        ("k2_ingest_duplicates_total", trade_series),
        ("k2_ingest_messages_total", quote_series),
        ("k2_ingest_valid_messages_total", quote_series),
        ("k2_ingest_dead_letters_total", {"kind": "trade", "reason": "malformed_json"}),
        ("k2_ingest_dead_letters_total", {"kind": "trade", "reason": "missing_field:side"}),
        ("k2_ingest_sequence_events_total", {"kind": "trade", "event": "gap"}),
        ("k2_ingest_missing_sequence_numbers_total", {"kind": "trade"}),
        ("k2_ingest_batch_messages_count", {"kind": "trade"}),
        ("k2_ingest_batch_messages_sum", {"kind": "trade"}),
        ("k2_ingest_batch_messages_bucket", {"kind": "trade", "le": "10.0"}),
        ("k2_ingest_batch_messages_bucket", {"kind": "trade", "le": "1.0"}),
    ]
    moved.mark(*queries)

    run_ingest(settings, [raw_batch(trades, topic, 3), raw_batch(quotes, quotes_topic, 0)])

    assert moved("k2_ingest_messages_total", **trade_series) == 6
    assert moved("k2_ingest_valid_messages_total", **trade_series) == 4
    assert moved("k2_ingest_duplicates_total", **trade_series) == 1
    assert moved("k2_ingest_messages_total", **quote_series) == 2
    assert moved("k2_ingest_valid_messages_total", **quote_series) == 2
    assert moved("k2_ingest_dead_letters_total", kind="trade", reason="malformed_json") == 1
    assert moved("k2_ingest_dead_letters_total", kind="trade", reason="missing_field:side") == 1
    assert moved("k2_ingest_sequence_events_total", kind="trade", event="gap") == 1
    assert moved("k2_ingest_missing_sequence_numbers_total", kind="trade") == 2
    # One trade batch of 6 messages: one observation, in the le=10 bucket and not in le=1.
    assert moved("k2_ingest_batch_messages_count", kind="trade") == 1
    assert moved("k2_ingest_batch_messages_sum", kind="trade") == 6
    assert moved("k2_ingest_batch_messages_bucket", kind="trade", le="10.0") == 1
    assert moved("k2_ingest_batch_messages_bucket", kind="trade", le="1.0") == 0


def test_counters_conserve_every_message_of_the_synthetic_feed(settings):
    feed = SyntheticFeed(
        FeedConfig(messages=8_000, symbols=20, invalid_rate=0.01, duplicate_rate=0.01, gap_rate=0.005, partitions=3)
    )
    batches = list(feed_batches(feed, batch_size=997))
    names = (
        "k2_ingest_messages_total",
        "k2_ingest_valid_messages_total",
        "k2_ingest_dead_letters_total",
        "k2_ingest_duplicates_total",
        "k2_ingest_sequence_events_total",
        "k2_ingest_batch_messages_count",
    )
    moved = Moved(total)
    moved.mark(*((name, {}) for name in names))

    landed = run_ingest(settings, batches)

    messages_in = moved("k2_ingest_messages_total")
    assert messages_in == feed.stats.sent == sum(landed.messages.values())
    assert messages_in == moved("k2_ingest_valid_messages_total") + moved("k2_ingest_dead_letters_total")
    assert moved("k2_ingest_dead_letters_total") == feed.stats.invalid == landed.tables["dead_letters"].num_rows
    assert moved("k2_ingest_duplicates_total") == feed.stats.duplicates == sum(landed.duplicates.values())
    assert moved("k2_ingest_sequence_events_total") == landed.tables["sequence_gaps"].num_rows > 0
    assert moved("k2_ingest_batch_messages_count") == len(batches)


def test_a_batch_log_line_names_its_source_positions(settings, caplog):
    caplog.set_level(logging.DEBUG, logger="k2.flow.steps")
    messages = [trade(trade_id="a", source_sequence=1), b"{oops", trade(trade_id="b", source_sequence=2)]
    run_ingest(settings, [raw_batch(messages, "metrics-log.trades", 2, 40)])
    (line,) = [
        r for r in caplog.records if r.name == "k2.flow.steps" and getattr(r, "topic", "") == "metrics-log.trades"
    ]
    assert (line.partition, line.first_offset, line.next_offset) == (2, 40, 43)
    assert (line.messages, line.rows, line.dead_letters, line.duplicates) == (3, 2, 1, 0)
    assert "metrics-log.trades/2 offsets 40..42" in line.getMessage()


def test_metrics_are_served_once_per_process():
    assert serve_metrics(0) is None  # off
    port = serve_metrics(free_port(), "127.0.0.1")
    assert port is not None
    assert serve_metrics(free_port(), "127.0.0.1") == port  # a second worker in the process shares it
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert "# TYPE k2_ingest_messages_total counter" in text
    assert "# TYPE k2_kafka_consumer_lag_messages gauge" in text


def test_a_taken_metrics_port_is_logged_not_fatal():
    script = (
        "import logging, socket, sys\n"
        "from k2.ops.metrics import serve_metrics\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "taken = socket.socket(); taken.bind(('127.0.0.1', 0)); taken.listen()\n"
        "sys.exit(0 if serve_metrics(taken.getsockname()[1], '127.0.0.1') is None else 1)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "metrics not served" in done.stderr and "K2_METRICS_PORT" in done.stderr
