"""SIGTERM and Ctrl-C stop the flow cleanly: it commits what it holds in every table and exits 0, promptly.

Real broker, the production command (recovery on), a tailing source that would never end by itself. The signal
comes once the process has committed part of the feed; after the stop every table's seam must stand at the same
position per partition (dead letters and gap events, which otherwise commit on their own slower cadence, were
committed too), and a restart then finishes the feed exactly.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from k2.flow.recovery import ensure_recovery_store, flow_command
from k2.ops.config import load_settings
from k2.storage.catalog import TABLE_NAMES, open_catalog
from k2.storage.seams import committed_offsets
from tests.fixtures.foreign_feed import ForeignFeed, assert_exact, flow_env
from tests.fixtures.traces import read_spans

ROOT = Path(__file__).resolve().parents[2]
PROMPT_EXIT_SECONDS = 20.0  # generous for a loaded 2-core CI machine; it takes well under a second here


def start(env: dict[str, str], recovery: Path, log: Path) -> subprocess.Popen:
    ensure_recovery_store(recovery)
    with open(log, "ab") as stderr:
        return subprocess.Popen(
            flow_command(load_settings(env), recovery), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_commits_what_is_held_and_exits_promptly(tmp_path, kafka_bootstrap, kafka_topic, stop):
    trades, quotes, dlq = kafka_topic(2, prefix="trades"), kafka_topic(2, prefix="quotes"), kafka_topic(1, prefix="dlq")
    # Large enough that the first commit comes long before the end: the compiled path reads a small feed whole first.
    expected = ForeignFeed(messages=1_500_000, seed=5).produce(kafka_bootstrap, trades, quotes)
    trace = tmp_path / "trace.jsonl"  # where flow_env sends the spans
    env = flow_env(tmp_path, kafka_bootstrap, (trades, quotes, dlq), tail=True)
    env["K2_BATCH_SIZE"] = "1000"  # a slower read, so the signal lands well inside the feed
    recovery, log = tmp_path / "recovery", tmp_path / "flow.log"
    process = start(env, recovery, log)
    deadline = time.monotonic() + 60
    while not any(s.name == "commit" and s.get("table") == "trades" for s in read_spans(trace)):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.02)

    process.send_signal(stop)
    sent = time.monotonic()
    assert process.wait(timeout=PROMPT_EXIT_SECONDS + 30) == 0, log.read_text()[-3000:]
    assert time.monotonic() - sent < PROMPT_EXIT_SECONDS
    assert "ending the sources, committing what is held" in log.read_text()

    settings = load_settings({}, data_dir=env["K2_DATA_DIR"], trades_topic=trades, quotes_topic=quotes)
    catalog = open_catalog(settings)
    seams = {name: committed_offsets(catalog.load_table((settings.namespace, name))) for name in TABLE_NAMES}
    assert seams["trades"] == seams["quotes"] == seams["dead_letters"] == seams["sequence_gaps"], seams
    held = sum(seams["dead_letters"].values())
    assert 0 < held < expected.sent, f"the stop did not fall mid-ingest: {held} of {expected.sent} committed"

    env["K2_KAFKA_TAIL"] = "false"  # now read to the end: what was committed is not written again
    assert start(env, recovery, log).wait(timeout=600) == 0, log.read_text()[-3000:]
    assert_exact(settings, expected, kafka_bootstrap, dlq, trace)
