"""Several workers (-w 2) and two processes (-i/-a) end in the same exact state as one worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from k2.kafka.producer import publish
from k2.loaders.synthetic import FeedConfig, SyntheticFeed
from k2.ops.config import load_settings
from tests.fixtures.flow import assert_landed_exactly
from tests.fixtures.net import free_ports

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "bytewax.run", "flows.ingest"]


@pytest.fixture
def produced(kafka_bootstrap, kafka_topic, tmp_path):
    topics = {"trade": kafka_topic(4, prefix="trades"), "quote": kafka_topic(4, prefix="quotes")}
    feed = SyntheticFeed(FeedConfig(messages=30_000, symbols=40, invalid_rate=0.005, duplicate_rate=0.005))
    publish(kafka_bootstrap, ((topics[k], key, value) for k, key, value in feed.messages()))
    env = {
        **os.environ,
        "K2_SOURCE": "kafka",
        "K2_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "K2_KAFKA_TAIL": "false",
        "K2_TRADES_TOPIC": topics["trade"],
        "K2_QUOTES_TOPIC": topics["quote"],
        "K2_DLQ_TOPIC": kafka_topic(1, prefix="dlq"),
        "K2_EPOCH_SECONDS": "0.3",
    }
    return feed, env


def check_exact(data_dir: Path, env: dict[str, str], feed: SyntheticFeed) -> None:
    settings = load_settings(
        {}, data_dir=str(data_dir), trades_topic=env["K2_TRADES_TOPIC"], quotes_topic=env["K2_QUOTES_TOPIC"]
    )
    assert_landed_exactly(settings, feed.stats)


def test_two_workers_in_one_process(produced, tmp_path):
    feed, env = produced
    env = {**env, "K2_DATA_DIR": str(tmp_path / "w2")}
    done = subprocess.run([*COMMAND, "-w", "2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    check_exact(tmp_path / "w2", env, feed)


def test_two_processes(produced, tmp_path):
    feed, env = produced
    env = {**env, "K2_DATA_DIR": str(tmp_path / "p2")}
    addresses = ";".join(f"127.0.0.1:{port}" for port in free_ports(2))
    processes = [
        subprocess.Popen(
            [*COMMAND, "-i", str(i), "-a", addresses],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (0, 1)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
    check_exact(tmp_path / "p2", env, feed)
