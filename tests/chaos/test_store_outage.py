"""The store goes away under a running flow: the catalog locked, the warehouse disk full.

The flow must not die and must not lose or repeat anything: its commit breaker opens, it stops consuming while it
waits (backpressure), and when the store is back the same process finishes with every message exactly once.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from k2.kafka.producer import publish
from k2.loaders.synthetic import FeedConfig, SyntheticFeed
from k2.ops.config import load_settings
from k2.storage.catalog import open_catalog
from tests.fixtures.flow import assert_landed_exactly
from tests.fixtures.net import free_port

ROOT = Path(__file__).resolve().parents[2]


class FlowProcess:
    def __init__(self, env: dict[str, str], log_path: Path):
        self.metrics_url = f"http://127.0.0.1:{env['K2_METRICS_PORT']}/metrics"
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in `wait`
        command = [sys.executable, "-m", "bytewax.run", "flows.ingest"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self._log, stderr=self._log)

    def metric(self, name: str, **labels: str) -> float | None:
        try:
            text = httpx.get(self.metrics_url, timeout=2).text
        except httpx.HTTPError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        return None

    def messages_read(self) -> float:
        text = httpx.get(self.metrics_url, timeout=2).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "k2_ingest_messages_total"
        )

    def wait_until(self, what: str, condition: Callable[[], bool], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, f"the flow exited while waiting for {what}:\n{self.tail()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.tail()}"
            time.sleep(0.2)

    def wait(self, timeout: float = 600) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@contextmanager
def published_feed(kafka_topic, kafka_bootstrap: str, messages: int) -> Iterator[tuple[SyntheticFeed, dict]]:
    topics = {"trade": kafka_topic(3, prefix="trades"), "quote": kafka_topic(3, prefix="quotes")}
    dlq = kafka_topic(1, prefix="dlq")
    feed = SyntheticFeed(FeedConfig(messages=messages, symbols=30))
    publish(kafka_bootstrap, ((topics[k], key, value) for k, key, value in feed.messages()))
    env = {
        **os.environ,
        "K2_SOURCE": "kafka",
        "K2_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "K2_TRADES_TOPIC": topics["trade"],
        "K2_QUOTES_TOPIC": topics["quote"],
        "K2_DLQ_TOPIC": dlq,
        "K2_KAFKA_TAIL": "false",
        "K2_EPOCH_SECONDS": "0.3",
        "K2_BATCH_SIZE": "2000",
        "K2_METRICS_PORT": str(free_port()),
        "K2_COMMIT_MAX_BACKOFF_SECONDS": "1",
        "K2_LOG_FORMAT": "text",
    }
    yield feed, env


def assert_exact(data_dir: Path, feed: SyntheticFeed, env: dict[str, str]) -> None:
    settings = load_settings(
        {}, data_dir=str(data_dir), trades_topic=env["K2_TRADES_TOPIC"], quotes_topic=env["K2_QUOTES_TOPIC"]
    )
    assert_landed_exactly(settings, feed.stats)


def committed_once(data_dir: Path) -> Callable[[], bool]:
    settings = load_settings({}, data_dir=str(data_dir))

    def check() -> bool:
        try:
            table = open_catalog(settings).load_table((settings.namespace, "trades"))
        except Exception:  # not created yet
            return False
        return table.current_snapshot() is not None

    return check


def breaker_open(flow: FlowProcess) -> Callable[[], bool]:
    return lambda: flow.metric("k2_circuit_breaker_state", breaker="iceberg_commit") == 2


def assert_consumption_stopped(flow: FlowProcess) -> None:
    """Backpressure: while the breaker is open the flow reads nothing more (its buffered batch is kept)."""
    time.sleep(1.0)  # what was already read drains into the waiting commit
    before = flow.messages_read()
    time.sleep(2.0)
    assert flow.messages_read() == before
    assert flow.metric("k2_circuit_breaker_state", breaker="iceberg_commit") in (1, 2)  # open, or probing


@pytest.mark.chaos
@pytest.mark.slow  # 12 s, or ~65 s on a loaded machine: the breaker's backoff doubles up to 30 s
def test_a_locked_catalog_stalls_the_flow_which_then_finishes_exactly(kafka_topic, kafka_bootstrap, tmp_path):
    data_dir = tmp_path / "k2"
    with published_feed(kafka_topic, kafka_bootstrap, 120_000) as (feed, env):
        # The busy timeout in the URI makes a locked database fail a commit in 0.2 s rather than SQLite's 5 s.
        env |= {
            "K2_DATA_DIR": str(data_dir),
            "K2_CATALOG_URI": f"sqlite:///{data_dir / 'catalog.db'}?timeout=0.2",
            "K2_BATCH_SIZE": "500",  # still reading when the lock comes: the first rows commit at once
        }
        flow = FlowProcess(env, tmp_path / "flow.log")
        flow.wait_until("a first commit", committed_once(data_dir))
        lock = sqlite3.connect(data_dir / "catalog.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")  # what a stuck backup or another writer does to SQLite
        try:
            flow.wait_until("the breaker to open", breaker_open(flow))
            assert_consumption_stopped(flow)
        finally:
            lock.execute("COMMIT")
            lock.close()
        assert flow.wait() == 0, flow.tail()  # the same process finished: no restart
    assert "breaker CLOSED -> OPEN" in flow.log_path.read_text(errors="replace")
    assert_exact(data_dir, feed, env)


@contextmanager
def small_disk(path: Path, size_mb: int) -> Iterator[Path]:
    path.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)], check=False)
    if mounted.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("CI runs as root and must be able to mount a small tmpfs for the full-disk test")
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.chaos
@pytest.mark.slow  # 12 s, or ~65 s on a loaded machine: the breaker's backoff doubles up to 30 s
def test_a_full_warehouse_disk_stalls_the_flow_which_then_finishes_exactly(kafka_topic, kafka_bootstrap, tmp_path):
    data_dir = tmp_path / "k2"
    with (
        small_disk(tmp_path / "disk", 64) as disk,
        published_feed(kafka_topic, kafka_bootstrap, 200_000) as (feed, env),
    ):
        # Small batches: the flow commits its first rows at once and then reads fast; it must still be reading
        # when the disk is full.
        env |= {"K2_DATA_DIR": str(data_dir), "K2_WAREHOUSE": (disk / "warehouse").as_uri(), "K2_BATCH_SIZE": "200"}
        flow = FlowProcess(env, tmp_path / "flow.log")
        flow.wait_until("a first commit", committed_once(data_dir))
        filler = disk / "filler"
        with open(filler, "wb") as f:  # fill the disk: the next data file cannot be written
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        try:
            flow.wait_until("the breaker to open", breaker_open(flow))
            assert_consumption_stopped(flow)
        finally:
            filler.unlink()  # space again
        assert flow.wait() == 0, flow.tail()
        assert_exact(data_dir, feed, env)
        shutil.rmtree(disk / "warehouse", ignore_errors=True)
