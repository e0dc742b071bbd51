"""Reconciliation and the broker-free parts of the Kafka module, on a real temp warehouse."""

import io
from contextlib import redirect_stdout

import pytest
from bytewax.testing import run_main

from flows.ingest import build_flow
from k2.cli import main
from k2.feed import FeedConfig
from k2.kafka import instrument_key
from k2.reconcile import PartitionReport, format_reports, reconcile
from k2.sources import SyntheticSource
from tests.fixtures.market import trade, wire


def test_reconcile_accounts_for_every_message(settings):
    run_main(build_flow(SyntheticSource(FeedConfig(messages=4_000, symbols=6, duplicate_rate=0.01)), settings))
    reports = reconcile(settings, {"synthetic.trades/0": (0, 10**6)})
    assert {r.partition for r in reports} >= {"synthetic.trades/0", "synthetic.quotes/0"}
    for report in reports:
        assert report.balanced, report
        assert report.accounted == report.messages > 0
    with_marks = next(r for r in reports if r.partition == "synthetic.trades/0")
    assert with_marks.lag == 10**6 - with_marks.committed_offset
    assert next(r for r in reports if r.partition == "synthetic.quotes/0").lag is None
    text = format_reports(reports)
    assert "synthetic.trades/0" in text and "yes" in text and "NO" not in text


def test_an_unbalanced_partition_is_reported():
    report = PartitionReport(partition="t/0", committed_offset=10, rows=5, dead_letters=1, duplicates=1, messages=10)
    assert not report.balanced
    assert "NO" in format_reports([report])


def test_reconcile_command_exit_status(settings, monkeypatch):
    run_main(build_flow(SyntheticSource(FeedConfig(messages=500, symbols=3)), settings))
    monkeypatch.setenv("K2_DATA_DIR", settings.data_dir)
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
