"""A real broker round trip, and the `python -m scripts.local_kafka` CLI life cycle."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

# kafka_bootstrap / kafka_topic come from tests.fixtures.kafka, loaded by
# tests/conftest.py (pytest_plugins).
from scripts.local_kafka import pid_alive
from tests.fixtures.kafka import TopicFactory, local_jvm_unavailable_reason
from tests.fixtures.requirements import BROKER_VARIABLES, require

ROOT = Path(__file__).resolve().parents[2]
JVM_HINT = "install Java 17 + Maven (`make kafka-fetch` caches the jars)"

pytestmark = pytest.mark.integration

N_MESSAGES = 1_000
N_KEYS = 25
PARTITIONS = 3
CONSUME_TIMEOUT_S = 60.0

Record = tuple[str, int, int, int]  # key, per-key sequence, partition, offset


def _produce(bootstrap: str, topic: str) -> list[Record]:
    """Send N_MESSAGES keyed messages; return what the delivery reports confirm."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    delivered: list[Record] = []
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)
            return
        key, seq = msg.value().decode().split(":")
        delivered.append((key, int(seq), msg.partition(), msg.offset()))

    for i in range(N_MESSAGES):
        key = f"SYM{i % N_KEYS:02d}"
        producer.produce(topic, key=key, value=f"{key}:{i // N_KEYS}", on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0, "messages still queued after flush"
    assert errors == [], f"delivery errors: {errors[:5]}"
    return delivered


def _consume_all(bootstrap: str, topic: str) -> list[Record]:
    """Read every partition from the beginning to its end, in arrival order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"verify-{uuid.uuid4().hex}",  # never joined: assign() only
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    received: list[Record] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        while len(at_end) < PARTITIONS and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    continue
                raise KafkaException(msg.error())
            key, seq = msg.value().decode().split(":")
            assert msg.key().decode() == key
            received.append((key, int(seq), msg.partition(), msg.offset()))
    finally:
        consumer.close()
    assert len(at_end) == PARTITIONS, f"only partitions {sorted(at_end)} reached their end"
    return received


def test_idempotent_roundtrip_exactly_once_in_key_order(kafka_bootstrap: str, kafka_topic: TopicFactory) -> None:
    topic = kafka_topic(PARTITIONS, prefix="roundtrip")

    delivered = _produce(kafka_bootstrap, topic)
    received = _consume_all(kafka_bootstrap, topic)

    assert len(delivered) == N_MESSAGES
    # Exactly once: every (key, seq) arrives, none twice, at the reported offsets.
    counts = Counter((key, seq) for key, seq, _, _ in received)
    assert max(counts.values()) == 1, "duplicates consumed"
    assert sorted(received) == sorted(delivered)
    # No gaps or duplicates in the log itself (no control records: no transactions).
    by_partition: dict[int, list[int]] = defaultdict(list)
    for _, _, partition, offset in received:
        by_partition[partition].append(offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))
    # Per-key order: each key lives in one partition and arrives in send order.
    seqs_by_key: dict[str, list[int]] = defaultdict(list)
    partitions_by_key: dict[str, set[int]] = defaultdict(set)
    for key, seq, partition, _ in received:
        seqs_by_key[key].append(seq)
        partitions_by_key[key].add(partition)
    assert len(seqs_by_key) == N_KEYS
    for key, seqs in seqs_by_key.items():
        assert seqs == list(range(N_MESSAGES // N_KEYS)), f"{key} out of order"
        assert len(partitions_by_key[key]) == 1, f"{key} spread over partitions"


def test_kafka_topic_factory_creates_requested_partitions(kafka_bootstrap: str, kafka_topic: TopicFactory) -> None:
    from confluent_kafka.admin import AdminClient

    names = [kafka_topic(n, prefix="factory") for n in (1, 4)]

    assert names[0] != names[1]
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert [len(metadata.topics[name].partitions) for name in names] == [1, 4]


# --------------------------------------------------------------------------- #
# CLI life cycle (starts its own, second broker via subprocess)
# --------------------------------------------------------------------------- #


def _cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.local_kafka", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _kill_leftover(state: dict[str, int]) -> None:
    """Last resort so a failing test does not leave a JVM (or its watchdog) behind."""
    if pid_alive(state["pid"]):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(state["pgid"] or state["pid"], signal.SIGKILL)


def test_cli_start_status_stop_leaves_nothing_running(tmp_path: Path) -> None:
    require("the local JVM broker", local_jvm_unavailable_reason(), hint=JVM_HINT, variables=BROKER_VARIABLES)
    state_dir = tmp_path / "state"  # private: never touches a developer's own broker
    # K2_KAFKA_OWNER: the broker outlives the CLI command, but not this test's process, even a killed one.
    env = {**os.environ, "K2_KAFKA_STATE_DIR": str(state_dir), "K2_KAFKA_OWNER": str(os.getpid())}
    state_file = state_dir / "broker.json"

    start = _cli("start", env=env)
    assert start.returncode == 0, start.stderr
    bootstrap = start.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", bootstrap), start.stdout
    state = json.loads(state_file.read_text())
    pid = int(state["pid"])
    try:
        assert state["bootstrap"] == bootstrap
        assert pid_alive(pid)  # after the command that started it has ended
        assert state["pgid"] not in (None, pid), "not in its watchdog's process group: not owned by this test"

        status = _cli("status", env=env)
        assert status.returncode == 0, status.stdout + status.stderr
        assert bootstrap in status.stdout and "answers" in status.stdout

        printed = _cli("env", env=env)
        assert printed.stdout.strip() == f"K2_KAFKA_BOOTSTRAP={bootstrap}"

        stop = _cli("stop", env=env)
        assert stop.returncode == 0, stop.stderr
    finally:
        _kill_leftover(state)

    assert not pid_alive(pid), f"broker pid {pid} still running after stop"
    assert not state_file.exists()
    assert not Path(state["data_dir"]).exists(), "fresh data dir not removed on stop"
    assert _cli("status", env=env).returncode == 1
    assert _cli("stop", env=env).returncode == 0  # idempotent
