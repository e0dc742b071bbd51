"""Backup and restore of the SQLite catalog + local warehouse: restored tables answer queries identically."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from pyiceberg.table import StaticTable

from k2.ops.cli import main
from k2.ops.config import load_settings
from k2.ops.reconcile import reconcile
from k2.storage.backup import BackupManifest, RestoreError, backup, restore
from k2.storage.catalog import TRADES, open_catalog
from k2.storage.writer import IcebergWriter
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import fed_per_partition
from tests.operational.answers import answers, snapshot_ids, synthetic_batches
from tests.unit.test_sink import arrow_batch


def test_restore_onto_a_wiped_data_dir_answers_identically(settings, tmp_path):
    batches = synthetic_batches(settings, 6_000)
    run_ingest(settings, batches)
    before = answers(settings)
    manifest = backup(settings, tmp_path / "backup")
    assert set(manifest.tables) == {f"market_data.{n}" for n in ("trades", "quotes", "dead_letters", "sequence_gaps")}
    shutil.rmtree(settings.data_path)
    restore(settings, tmp_path / "backup")
    assert answers(settings) == before
    reports = reconcile(settings)
    assert all(report.balanced for report in reports)
    # Anchored to the input, not only to K2's own counts: every message fed is accounted for after the restore.
    assert {r.partition: r.messages for r in reports} == fed_per_partition(batches)


def test_a_backup_taken_while_the_writer_commits_is_one_consistent_state(settings, tmp_path):
    writer = IcebergWriter(open_catalog(settings), settings.namespace, commit_interval_seconds=3600)
    writer.write(arrow_batch(0, 50))
    writer.commit()
    stop = threading.Event()

    def keep_committing() -> None:
        offset = 50
        while not stop.is_set():
            writer.write(arrow_batch(offset, 20))
            writer.commit(side_tables=False)
            offset += 20

    thread = threading.Thread(target=keep_committing)
    thread.start()
    try:
        manifests = [backup(settings, tmp_path / f"backup-{i}") for i in range(3)]
    finally:
        stop.set()
        thread.join()
        writer.close()
    pinned = [_backed_up_snapshots(tmp_path / f"backup-{i}", m) for i, m in enumerate(manifests)]
    assert len({p[TRADES] for p in pinned}) > 1  # commits landed between the backups
    # the original keeps every snapshot: what it answers at each backup's snapshots is what the backup must answer
    expected = [answers(settings, p) for p in pinned]
    for i, want in enumerate(expected):
        restore(settings, tmp_path / f"backup-{i}")
        assert snapshot_ids(settings)[TRADES] == pinned[i][TRADES]
        assert answers(settings, pinned[i]) == want


def _backed_up_snapshots(folder: Path, manifest: BackupManifest) -> dict[str, int]:
    """The current trades snapshot in the backup's own metadata."""
    location = manifest.tables[f"market_data.{TRADES}"].removeprefix("file://")
    relative = Path(location).relative_to(manifest.warehouse)
    return {TRADES: StaticTable.from_metadata(str(folder / "warehouse" / relative)).current_snapshot().snapshot_id}


def test_restore_refuses_another_location_and_moves_recovery_state_aside(settings, tmp_path):
    run_ingest(settings, synthetic_batches(settings, 2_000))
    backup(settings, tmp_path / "backup")
    elsewhere = load_settings({}, data_dir=str(tmp_path / "elsewhere"))
    with pytest.raises(RestoreError, match="absolute paths"):
        restore(elsewhere, tmp_path / "backup")
    recovery = settings.data_path / "recovery"
    recovery.mkdir()
    restore(settings, tmp_path / "backup", recovery_dir=recovery)
    assert not recovery.exists()
    assert [p.name.startswith("recovery.before-restore-") for p in settings.data_path.iterdir()].count(True) == 1


def test_k2_backup_and_restore_commands(settings, tmp_path, monkeypatch, capsys):
    run_ingest(settings, synthetic_batches(settings, 5_000))
    before = answers(settings)
    monkeypatch.setenv("K2_DATA_DIR", settings.data_dir)
    assert main(["backup", str(tmp_path / "backup")]) == 0
    assert main(["backup", str(tmp_path / "backup")]) == 1  # never over an existing backup
    for parquet in settings.data_path.rglob("*.parquet"):
        parquet.write_bytes(b"damaged")
    assert main(["restore", str(tmp_path / "backup")]) == 0
    assert "restored 4 tables" in capsys.readouterr().out
    assert answers(settings) == before
