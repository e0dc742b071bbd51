"""kill -9 the ingest process at random points, again and again, then check the tables are exact.

Real broker, real process (`python -m bytewax.run flows.ingest` with recovery on), real warehouse. Once the recovery
directory is deleted as well, so the restart must rebuild from the Iceberg seams alone.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

from k2.config import load_settings
from k2.feed import FeedConfig, SyntheticFeed
from k2.kafka import publish
from k2.recovery import ensure_recovery_store, flow_command
from tests.fixtures.flow import assert_landed_exactly

ROOT = Path(__file__).resolve().parents[2]
KILLS = 10


def start_flow(env: dict[str, str], recovery: Path) -> subprocess.Popen:
    ensure_recovery_store(recovery)
    # The production command, with a snapshot every second whatever the default: the kills come every 0.8-2.4 s,
    # so most restarts resume from a recovery snapshot taken with commits in flight.
    command = flow_command(load_settings(env, snapshot_seconds=1), recovery)
    # stderr to a file (appended over all runs): an unread pipe that fills up would block the flow.
    with open(recovery.parent / "flow.log", "ab") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)


def flow_log(recovery: Path) -> str:
    return (recovery.parent / "flow.log").read_text(errors="replace")[-3000:]


def test_kill_9_at_random_points_loses_and_duplicates_nothing(tmp_path, kafka_bootstrap, kafka_topic):
    trades, quotes, dlq = kafka_topic(3, prefix="trades"), kafka_topic(3, prefix="quotes"), kafka_topic(1, prefix="dlq")
    env = {
        **os.environ,
        "K2_SOURCE": "kafka",
        "K2_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "K2_TRADES_TOPIC": trades,
        "K2_QUOTES_TOPIC": quotes,
        "K2_DLQ_TOPIC": dlq,
        "K2_KAFKA_TAIL": "false",
        "K2_DATA_DIR": str(tmp_path / "k2"),
        "K2_EPOCH_SECONDS": "0.3",
        "K2_BATCH_SIZE": "2000",
    }
    feed = SyntheticFeed(
        FeedConfig(
            messages=400_000, symbols=60, invalid_rate=0.002, duplicate_rate=0.005, gap_rate=0.001, reorder_rate=0.002
        )
    )
    topics = {"trade": trades, "quote": quotes}
    publish(kafka_bootstrap, ((topics[k], key, value) for k, key, value in feed.messages()))

    rng = random.Random(2026)
    recovery = tmp_path / "recovery"
    kills = finished = 0
    while kills < KILLS + 1 and not finished:
        if kills == KILLS // 2:
            shutil.rmtree(recovery, ignore_errors=True)  # once: no recovery state at all
        process = start_flow(env, recovery)
        deadline = time.monotonic() + rng.uniform(0.8, 2.4)
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
        else:
            assert process.returncode == 0, flow_log(recovery)
            finished = True
    assert kills >= KILLS, f"the flow finished after {kills} kills: make the load larger"
    process = start_flow(env, recovery)
    process.wait(timeout=600)
    assert process.returncode == 0, flow_log(recovery)

    settings = load_settings({}, data_dir=env["K2_DATA_DIR"], trades_topic=trades, quotes_topic=quotes)
    assert_landed_exactly(settings, feed.stats)
