"""The recovery run command: the one scripts/ingest.sh runs (`python -m k2.flow.recovery`), built for the tests and
benchmarks that run the flow."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest

from k2.flow.recovery import discard_unfinished_epochs, ensure_recovery_store, flow_command, main
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


def _rows(store: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(store / "part-0.sqlite3") as db:
        return db.execute(sql).fetchall()


def _record(store: Path, executions: list[tuple], frontiers: list[tuple], snaps: list[tuple]) -> None:
    with sqlite3.connect(store / "part-0.sqlite3") as db:
        db.executemany("INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (?, ?, ?)", executions)
        db.executemany("INSERT INTO fronts (ex_num, worker_index, worker_frontier) VALUES (?, ?, ?)", frontiers)
        db.executemany("INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?)", snaps)


def test_a_restart_drops_the_snapshots_of_epochs_a_killed_run_never_finished(tmp_path):
    """As the kill test met it (2 workers): run 1 stored epoch 1's state of a partition it read, then was killed
    before finishing the epoch; run 2 resumed at epoch 1 and never read that partition. Left in the store, run 1's
    state would be what run 3 resumes that partition's sequence check from."""
    store = tmp_path / "recovery"
    ensure_recovery_store(store)
    _record(
        store,
        executions=[(0, 2, 1), (1, 2, 1)],  # run 0 and run 1 both started at epoch 1 and finished none
        frontiers=[],
        snaps=[
            ("k2_ingest.read", "quotes/1", 0, b"position 0"),  # from before any run: kept
            ("k2_ingest.sequence_check", "quotes/1", 1, b"run 1 after 5,000 quotes"),
            ("k2_ingest.iceberg", "iceberg", 1, b"run 1's pending rows"),
        ],
    )
    ensure_recovery_store(store)  # what every start runs before Bytewax
    assert _rows(store, "SELECT step_id, snap_epoch FROM snaps") == [("k2_ingest.read", 0)]


def test_epochs_every_worker_finished_stay(tmp_path):
    """The resume epoch is Bytewax's: the newest run's slowest worker (a worker with no frontier recorded counts at
    its resume epoch); snapshots before it stay, and a second call finds nothing more to drop."""
    store = tmp_path / "recovery"
    ensure_recovery_store(store)
    snaps = [("step", "key", epoch, b"state") for epoch in range(2, 9)]
    _record(
        store, executions=[(3, 2, 2), (4, 2, 4)], frontiers=[(3, 0, 4), (3, 1, 4), (4, 0, 6), (4, 1, 5)], snaps=snaps
    )
    assert discard_unfinished_epochs(store) == 4  # epochs 5 to 8: worker 1 of run 4 finished only up to 5
    assert [epoch for (epoch,) in _rows(store, "SELECT snap_epoch FROM snaps ORDER BY snap_epoch")] == [2, 3, 4]
    assert discard_unfinished_epochs(store) == 0
    with sqlite3.connect(store / "part-0.sqlite3") as db:
        db.execute("DELETE FROM fronts WHERE ex_num = 4 AND worker_index = 1")  # worker 1 of run 4 recorded nothing
    assert discard_unfinished_epochs(store) == 1  # then run 4 resumes at its own resume epoch, 4
    assert [epoch for (epoch,) in _rows(store, "SELECT snap_epoch FROM snaps ORDER BY snap_epoch")] == [2, 3]
