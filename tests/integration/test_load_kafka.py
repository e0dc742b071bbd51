"""`k2 load --asx` on a real broker: every ASX line is published keyed by instrument, and the Kafka flow lands it."""

from __future__ import annotations

from collections import defaultdict

from k2.kafka.admin import partitions_of, watermarks
from k2.ops.cli import main
from k2.ops.reconcile import reconcile
from tests.conftest import ASX_SAMPLES
from tests.fixtures.flow import read_landed
from tests.integration.test_kafka_ingest import read_topic, run_flow, settings_on_new_topics

TABLES = ("trades", "quotes")
ASX = ASX_SAMPLES


def test_asx_files_to_kafka_to_iceberg(tmp_path, kafka_bootstrap, kafka_topic, monkeypatch):
    settings = settings_on_new_topics(tmp_path, kafka_bootstrap, kafka_topic, 3)
    for name in ("kafka_bootstrap", "trades_topic", "quotes_topic"):
        monkeypatch.setenv(f"K2_{name.upper()}", getattr(settings, name))
    assert main(["load", "--asx", str(ASX)]) == 0

    lines = {kind: sum(len(p.read_bytes().splitlines()) for p in (ASX / kind).glob("*.csv")) for kind in TABLES}
    for kind, topic in (("trades", settings.trades_topic), ("quotes", settings.quotes_topic)):
        messages = read_topic(kafka_bootstrap, topic)
        assert len(messages) == lines[kind]
        partitions = defaultdict(set)
        for message in messages:
            partitions[message.key()].add(message.partition())
        assert set(partitions) == {b"ASX:MWR", b"ASX:DVN"}
        assert all(len(p) == 1 for p in partitions.values())  # one instrument, one partition, in file order

    run_flow(settings)
    landed = read_landed(settings)
    assert landed.tables["trades"].num_rows == lines["trades"]
    assert landed.tables["quotes"].num_rows == lines["quotes"]
    assert landed.tables["dead_letters"].num_rows == 0
    topics = [settings.trades_topic, settings.quotes_topic]
    reports = reconcile(settings, watermarks(kafka_bootstrap, partitions_of(kafka_bootstrap, topics)))
    for report in reports:
        assert report.balanced, report
        assert report.lag == 0, report
    # Every line of the files was read once: K2's messages-read per topic against the raw files' line counts.
    for kind, topic in (("trades", settings.trades_topic), ("quotes", settings.quotes_topic)):
        assert sum(r.messages for r in reports if r.partition.startswith(f"{topic}/")) == lines[kind]
