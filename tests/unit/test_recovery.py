"""The recovery run command: the one scripts/ingest.sh runs (`python -m k2.flow.recovery`), built for the tests and
benchmarks that run the flow."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest

from k2.flow.recovery import ensure_recovery_store, flow_command, main
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


def test_the_ingest_script_runs_this_module_not_a_command_of_its_own():
    script = (ROOT / "scripts" / "ingest.sh").read_text()
    assert re.search(r'^exec .* python -m k2\.flow\.recovery "\$@"$', script, re.MULTILINE), script
    assert "flows.ingest" not in script and " -r " not in script  # the command is not spelt out twice


def test_main_makes_the_store_then_becomes_the_flow_command(tmp_path, monkeypatch):
    executed: list[list[str]] = []

    def execv(path: str, args: list[str]) -> None:
        executed.append(args)
        raise SystemExit(0)  # the real one never returns

    monkeypatch.setattr(os, "execv", execv)
    monkeypatch.setenv("K2_DATA_DIR", str(tmp_path / "k2"))
    monkeypatch.setenv("K2_SNAPSHOT_SECONDS", "3")
    monkeypatch.setenv("K2_RECOVERY_PARTITIONS", "2")
    with pytest.raises(SystemExit):
        main(["-w", "2"])
    recovery = tmp_path / "k2" / "recovery"
    assert sorted(p.name for p in recovery.iterdir()) == ["part-0.sqlite3", "part-1.sqlite3"]
    assert executed == [[*flow_command(load_settings(), recovery), "-w", "2"]]
    assert executed[0][executed[0].index("-s") + 1] == "3"


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
