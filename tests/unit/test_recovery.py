"""The recovery run command: the one scripts/ingest.sh runs, built for the tests and benchmarks that run the flow."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from k2.flow.recovery import ensure_recovery_store, flow_command
from k2.ops.config import ConfigError, load_settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_the_command_snapshots_at_its_own_interval_not_at_every_commit(tmp_path):
    settings = load_settings({"K2_EPOCH_SECONDS": "1", "K2_SNAPSHOT_SECONDS": "7"})
    command = flow_command(settings, tmp_path / "recovery")
    assert command[1:] == ["-m", "bytewax.run", "flows.ingest", "-r", str(tmp_path / "recovery"), "-s", "7", "-b", "0"]
    traced = flow_command(settings, tmp_path / "recovery", ("-m", "tracer", "out"))
    assert traced[1:5] == ["-m", "tracer", "out", "flows.ingest"]


def test_the_snapshot_interval_is_whole_positive_seconds():
    with pytest.raises(ConfigError, match="K2_SNAPSHOT_SECONDS"):
        load_settings({"K2_SNAPSHOT_SECONDS": "0"})
    with pytest.raises(ConfigError, match="K2_SNAPSHOT_SECONDS"):
        load_settings({"K2_SNAPSHOT_SECONDS": "2.5"})


def test_the_ingest_script_runs_the_same_command_with_the_same_default():
    script = (ROOT / "scripts" / "ingest.sh").read_text()
    default = re.search(r'-s "\$\{K2_SNAPSHOT_SECONDS:-(\d+)\}" -b 0', script)
    assert default is not None, "scripts/ingest.sh no longer passes K2_SNAPSHOT_SECONDS to bytewax.run -s"
    assert int(default.group(1)) == load_settings({}).snapshot_seconds


def test_the_recovery_store_is_made_once_and_then_kept(tmp_path):
    store = tmp_path / "recovery"
    ensure_recovery_store(store, partitions=2)
    parts = sorted(p.name for p in store.iterdir())
    assert parts == ["part-0.sqlite3", "part-1.sqlite3"]
    with sqlite3.connect(store / "part-0.sqlite3") as db:
        db.execute("CREATE TABLE marker (x)")  # stands for the state a run wrote
    ensure_recovery_store(store, partitions=2)
    with sqlite3.connect(store / "part-0.sqlite3") as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'marker'").fetchone() is not None
