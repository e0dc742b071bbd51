"""Maintenance on real temp-dir warehouses: compaction keeps rows exactly, expiry keeps seams and counts."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyiceberg.types import StringType

from k2.ops.cli import main
from k2.storage.catalog import TRADES, open_catalog, read_table
from k2.storage.cleanup import referenced_files, remove_orphan_files
from k2.storage.maintenance import (
    MaintenancePolicy,
    compact,
    ensure_metadata_properties,
    expire_snapshots,
    maintain,
    snapshots_to_expire,
)
from k2.storage.seams import committed_offsets, resume_offsets, summed_property
from k2.storage.writer import IcebergWriter
from tests.unit.test_sink import arrow_batch

KEY = "market.trades/0"
KEEP_ONE = MaintenancePolicy(retain_last=1, max_snapshot_age_seconds=None, min_files_to_compact=2)


def write_commits(settings, commits: int, per_commit: int = 5, start: int = 0, duplicate_every: int = 0):
    writer = IcebergWriter(open_catalog(settings), settings.namespace, commit_interval_seconds=3600)
    for i in range(commits):
        writer.write(arrow_batch(start + i * per_commit, per_commit, duplicate_every))
        writer.commit(side_tables=False)
    writer.close()
    return writer.tables[TRADES].refresh()


def sorted_rows(table) -> pa.Table:
    return read_table(table).sort_by([("source_offset", "ascending")])


def live_files(table) -> list[str]:
    return [task.file.file_path for task in table.scan().plan_files()]


def live_files_at(table, snapshot_id: int) -> list[str]:
    return [task.file.file_path for task in table.scan(snapshot_id=snapshot_id).plan_files()]


def test_compaction_replaces_small_files_with_one_sorted_file_and_the_same_rows(settings):
    table = write_commits(settings, 6)
    before = sorted_rows(table)
    assert len(live_files(table)) == 6
    files_in, files_out, rows, partitions = compact(table, KEEP_ONE)
    table = table.refresh()
    assert (files_in, files_out, rows, partitions) == (6, 1, 30, 1)
    assert sorted_rows(table).equals(before)
    [path] = live_files(table)
    data = pq.read_table(path.removeprefix("file://"))
    keys = list(zip(data["symbol"].to_pylist(), data["timestamp"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    snapshot = table.current_snapshot()
    assert snapshot.summary.operation.value == "replace"
    assert "k2.kafka.offsets" not in snapshot.summary.additional_properties
    assert committed_offsets(table) == {KEY: 30}  # the parent's seam
    assert len(snapshot.manifests(table.io)) == 1  # merged in the same snapshot


def test_compaction_leaves_partitions_with_few_small_files_alone(settings):
    table = write_commits(settings, 3)
    assert compact(table, MaintenancePolicy(min_files_to_compact=4)) == (0, 0, 0, 0)
    assert len(live_files(table.refresh())) == 3


def test_expiry_keeps_the_seam_and_carries_the_counts(settings):
    table = write_commits(settings, 8, duplicate_every=3)
    messages, duplicates = summed_property(table, "k2.messages"), summed_property(table, "k2.duplicates")
    compact(table, KEEP_ONE)  # the newest snapshot now records no offsets: its parent must survive expiry
    table = table.refresh()
    expired, deleted = expire_snapshots(table, KEEP_ONE)
    table = table.refresh()
    assert expired == 7
    assert len(table.snapshots()) == 2  # the compaction and the data commit whose seam it inherits
    assert committed_offsets(table) == {KEY: 40}
    assert summed_property(table, "k2.messages") == messages == {KEY: 40}
    assert summed_property(table, "k2.duplicates") == duplicates
    assert deleted == 7  # their manifest lists: the kept data commit still reads the eight small files
    assert read_table(table).num_rows + duplicates[KEY] == 40
    table = write_commits(settings, 1, start=40)  # a new seam: the pre-compaction snapshot may go now
    expired, deleted = expire_snapshots(table, KEEP_ONE)
    assert expired == 2
    assert deleted == 8 + 8 + 2  # the small files, their manifests, two manifest lists
    assert summed_property(table.refresh(), "k2.messages") == {KEY: 45}


def test_a_writer_restarted_after_expiry_resumes_exactly(settings):
    write_commits(settings, 5)
    table = open_catalog(settings).load_table((settings.namespace, TRADES))
    maintain(table, KEEP_ONE)
    writer = IcebergWriter(open_catalog(settings), settings.namespace)
    assert resume_offsets(writer.tables)[KEY] == 25
    writer.write(arrow_batch(20, 10))  # 20..24 are committed already: dropped by the seam
    writer.close()
    table = writer.tables[TRADES].refresh()
    offsets = read_table(table, ["source_offset"])["source_offset"].to_pylist()
    assert sorted(offsets) == list(range(30))
    assert summed_property(table, "k2.messages") == {KEY: 30}


def test_expiry_by_age_and_count(settings):
    table = write_commits(settings, 5)
    snapshots = table.metadata.snapshots
    newest = snapshots[-1].timestamp_ms
    keep_two = MaintenancePolicy(retain_last=2, max_snapshot_age_seconds=None)
    assert snapshots_to_expire(table.metadata, keep_two, newest) == [s.snapshot_id for s in snapshots[:3]]
    by_age = MaintenancePolicy(retain_last=0, max_snapshot_age_seconds=3600)
    assert snapshots_to_expire(table.metadata, by_age, newest) == []  # all younger than an hour
    assert len(snapshots_to_expire(table.metadata, by_age, newest + 7_200_000)) == 4  # never the current one


def test_expired_files_are_deleted_and_the_table_still_reads(settings):
    for round_ in range(3):
        table = write_commits(settings, 3, start=round_ * 15)
        before = sorted_rows(table)
        maintain(table, KEEP_ONE)
    table = table.refresh()
    on_disk = {str(p) for p in Path(settings.data_path).rglob("trades/data/**/*.parquet")}
    # exactly what the kept snapshots read: the compaction's file and its seam parent's small files
    referenced = {f.removeprefix("file://") for s in table.snapshots() for f in live_files_at(table, s.snapshot_id)}
    assert on_disk == referenced
    # manifests and manifest lists too, although the later rounds found what they reference in the process's cache
    avro_on_disk = {str(p) for p in Path(settings.data_path).rglob("trades/metadata/*.avro")}
    assert avro_on_disk == {f.removeprefix("file://") for f in referenced_files(table) if f.endswith(".avro")}
    assert len(table.snapshots()) == 2
    assert sorted_rows(table).equals(before)


def test_maintenance_turns_on_metadata_log_trimming(settings):
    table = write_commits(settings, 1)
    table = ensure_metadata_properties(table)
    assert table.properties["write.metadata.delete-after-commit.enabled"] == "true"
    for _ in range(30):
        table.append(pa.Table.from_batches([], schema=table.schema().as_arrow()))
    assert len(table.refresh().metadata.metadata_log) == 20
    metadata_files = list(Path(settings.data_path).rglob("trades/metadata/*.metadata.json"))
    assert len(metadata_files) == 21  # the log and the current file; older ones deleted by pyiceberg


def test_orphan_sweep_removes_only_unreferenced_old_files(settings):
    table = write_commits(settings, 2)
    data_dir = Path(live_files(table)[0].removeprefix("file://")).parent
    orphan = data_dir / "left-by-a-killed-writer.parquet"
    orphan.write_bytes(b"x")
    assert remove_orphan_files(table, older_than_seconds=3600) == 0  # too young: may be a commit in progress
    assert remove_orphan_files(table, older_than_seconds=0) == 1
    assert not orphan.exists()
    assert read_table(table.refresh()).num_rows == 10


def test_compaction_reads_files_written_before_a_column_was_added(settings):
    table = write_commits(settings, 4)
    with table.update_schema() as update:
        update.add_column("venue", StringType())
    table = table.refresh()
    compact(table, KEEP_ONE)
    data = read_table(table.refresh())
    assert data.num_rows == 20
    assert pc.all(pc.is_null(data["venue"])).as_py()


@pytest.mark.parametrize("retain_last", [1, 3])
def test_repeated_maintenance_between_commits_keeps_every_row(settings, retain_last):
    policy = MaintenancePolicy(retain_last=retain_last, max_snapshot_age_seconds=None, min_files_to_compact=2)
    for round_ in range(4):
        table = write_commits(settings, 3, start=round_ * 15)
        maintain(table, policy)
    table = table.refresh()
    assert sorted(read_table(table, ["source_offset"])["source_offset"].to_pylist()) == list(range(60))
    assert summed_property(table, "k2.messages") == {KEY: 60}
    assert committed_offsets(table) == {KEY: 60}


def test_k2_maintain_command_prints_what_it_did(settings, monkeypatch, capsys):
    write_commits(settings, 5)
    monkeypatch.setenv("K2_DATA_DIR", settings.data_dir)
    assert main(["maintain", "--tables", "trades", "--retain-last", "1", "--max-age", "0", "--min-files", "2"]) == 0
    out = capsys.readouterr().out
    assert "market_data.trades: compacted 5 files (25 rows, 1 partitions) into 1" in out
    assert "expired 4 snapshots" in out
    assert main(["maintain", "--tables", "nope"]) == 2


def test_the_flow_writer_maintains_its_tables_every_n_commits(settings):
    policy = MaintenancePolicy(retain_last=3, max_snapshot_age_seconds=None, min_files_to_compact=2)
    writer = IcebergWriter(
        open_catalog(settings), settings.namespace, maintenance_every_commits=5, maintenance_policy=policy
    )
    for start in range(0, 200, 10):
        writer.write(arrow_batch(start, 10))
        writer.commit()
    writer.close()
    table = writer.tables["trades"].refresh()
    assert len(table.snapshots()) <= 3 + 5  # kept ones plus at most one period's new commits
    assert sorted(read_table(table, ["source_offset"])["source_offset"].to_pylist()) == list(range(200))
    assert committed_offsets(table) == {"market.trades/0": 200}
    assert summed_property(table, "k2.messages") == {"market.trades/0": 200}  # expired counts carried
