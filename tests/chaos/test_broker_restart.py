"""The broker stops and starts again in the middle of an ingest: the final state is exact.

Mid-ingest is proven, not hoped for: the broker stops only once the flow has committed part of the feed (a commit
span in its trace file), and the committed position at that moment must lie strictly inside the feed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from k2.kafka.admin import ensure_topics
from k2.kafka.producer import publish
from k2.loaders.synthetic import FeedConfig, SyntheticFeed
from k2.ops.config import load_settings
from k2.storage.catalog import open_catalog
from k2.storage.seams import committed_offsets
from scripts.local_kafka import start_broker
from tests.fixtures.flow import assert_landed_exactly
from tests.fixtures.kafka import local_jvm_unavailable_reason
from tests.fixtures.net import free_ports
from tests.fixtures.requirements import BROKER_VARIABLES, require
from tests.fixtures.traces import read_spans

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_broker_restart_mid_run(tmp_path):
    require("a private local broker to restart", local_jvm_unavailable_reason(), variables=BROKER_VARIABLES)
    port, controller = free_ports(2)  # kept across the restart
    # Owned by this process (start_broker's default): both brokers die with it, even if pytest is killed.
    broker = start_broker(tmp_path / "kafka", port=port, controller_port=controller, ephemeral=False)
    try:
        ensure_topics(broker.bootstrap, ["market.trades", "market.quotes", "market.dlq"], partitions=3)
        feed = SyntheticFeed(FeedConfig(messages=1_000_000, symbols=40))  # still reading at the first commit
        topics = {"trade": "market.trades", "quote": "market.quotes"}
        publish(broker.bootstrap, ((topics[k], key, value) for k, key, value in feed.messages()))
        env = {
            **os.environ,
            "K2_SOURCE": "kafka",
            "K2_KAFKA_BOOTSTRAP": broker.bootstrap,
            "K2_KAFKA_TAIL": "false",
            "K2_DATA_DIR": str(tmp_path / "k2"),
            "K2_EPOCH_SECONDS": "0.3",
            "K2_BATCH_SIZE": "2000",
            "K2_TRACE_FILE": str(tmp_path / "trace.jsonl"),
            "K2_METRICS_PORT": "0",
        }
        command = [sys.executable, "-m", "bytewax.run", "flows.ingest"]
        # stderr to a file: librdkafka logs every refused connection during the outage, and an unread pipe fills
        # up and blocks the flow.
        log_path = tmp_path / "flow.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed below
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while not any(s.name == "commit" and s.get("table") == "trades" for s in read_spans(env["K2_TRACE_FILE"])):
            assert process.poll() is None and time.monotonic() < deadline, "the flow never committed"
            time.sleep(0.02)
        broker.stop()
        assert process.poll() is None, "the flow had ended before the broker stopped"
        settings = load_settings({}, data_dir=env["K2_DATA_DIR"])
        trades = open_catalog(settings).load_table((settings.namespace, "trades"))
        committed = sum(committed_offsets(trades).values())
        assert 0 < committed < feed.stats.by_kind["trade"], f"not mid-ingest: {committed} trades committed"
        time.sleep(3.0)
        broker = start_broker(tmp_path / "kafka", port=port, controller_port=controller, ephemeral=False)
        attempts = 1
        # The flow may ride out the outage or fail; an operator (or a supervisor) restarts it until it finishes.
        while process.wait(timeout=600) != 0 and attempts < 5:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
            attempts += 1
        log.close()
        assert process.returncode == 0, log_path.read_text(errors="replace")[-3000:]
    finally:
        broker.stop()

    assert_landed_exactly(settings, feed.stats)
