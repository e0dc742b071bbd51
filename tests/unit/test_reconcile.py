"""Reconciliation and the broker-free parts of the Kafka module, on a real temp warehouse."""

import io
from contextlib import redirect_stdout

import pytest
from bytewax.testing import run_main

from flows.ingest import build_flow
from k2.flow.sources import SyntheticSource
from k2.kafka.producer import instrument_key
from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from k2.ops.cli import main
from k2.ops.reconcile import PartitionReport, format_reports, reconcile
from tests.fixtures.market import fed_per_partition, trade, wire


def test_reconcile_accounts_for_every_message(settings):
    config = FeedConfig(messages=4_000, symbols=6, invalid_rate=0.01, duplicate_rate=0.01)
    run_main(build_flow(SyntheticSource(config, batch_size=500), settings))
    reports = reconcile(settings, {"synthetic.trades/0": (0, 10**6)})
    # The oracle is the generator: the same seeded feed, its batches and its own counts of what it injected.
    feed = SyntheticFeed(config)
    fed = fed_per_partition(feed_batches(feed, 500))
    stats = feed.stats
    assert stats.invalid > 0 and stats.duplicates > 0
    assert {r.partition: r.messages for r in reports} == fed
    assert {r.partition: r.committed_offset for r in reports} == fed  # offsets from 0: the seam is the count
    assert sum(r.rows for r in reports) == stats.sent - stats.invalid - stats.duplicates
    assert sum(r.dead_letters for r in reports) == stats.invalid
    assert sum(r.duplicates for r in reports) == stats.duplicates
    assert all(report.balanced for report in reports)
    with_marks = next(r for r in reports if r.partition == "synthetic.trades/0")
    assert with_marks.lag == 10**6 - fed["synthetic.trades/0"]
    assert next(r for r in reports if r.partition == "synthetic.quotes/0").lag is None
    text = format_reports(reports)
    assert "synthetic.trades/0" in text and "yes" in text and "NO" not in text


def test_an_unbalanced_partition_is_reported():
    report = PartitionReport(partition="t/0", committed_offset=10, rows=5, dead_letters=1, duplicates=1, messages=10)
    assert not report.balanced
    assert "NO" in format_reports([report])


def test_a_partition_committed_past_the_topic_end_is_reported():
    report = PartitionReport(
        partition="t/0", committed_offset=50, high_watermark=5, rows=50, dead_letters=0, duplicates=0, messages=50
    )
    assert report.balanced and report.past_the_topic_end and report.lag == -45
    assert "NOT THE SAME TOPIC: committed past the topic's end on t/0" in format_reports([report])


def test_reconcile_command_exit_status(settings, monkeypatch):
    run_main(build_flow(SyntheticSource(FeedConfig(messages=500, symbols=3)), settings))
    monkeypatch.setenv("K2_DATA_DIR", settings.data_dir)
    # A warehouse fed by the synthetic source: no broker to compare with, whatever the caller's environment says.
    monkeypatch.delenv("K2_KAFKA_BOOTSTRAP", raising=False)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["reconcile"]) == 0
    assert "balanced" in out.getvalue()


def test_produce_needs_a_broker_address(monkeypatch, capsys):
    monkeypatch.delenv("K2_KAFKA_BOOTSTRAP", raising=False)
    assert main(["produce", "--synthetic", "10"]) == 2
    assert "K2_KAFKA_BOOTSTRAP" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (wire(trade(exchange="XASX", symbol="MWR")), b"XASX:MWR"),
        (b"{broken", None),
        (b"[]", None),
        # Bad UTF-8 inside a string: msgspec raises UnicodeDecodeError, not a msgspec error (it crashed the DLQ
        # sink, which keys every dead letter it sends).
        (b'{"exchange":"X","symbol":"\xff"}', None),
        (b'{"exchange":"\xc3","symbol":"A"}', None),
    ],
)
def test_messages_are_keyed_by_instrument(value, key):
    assert instrument_key(value) == key
