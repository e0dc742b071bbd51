"""Maintenance on a live table: the flow runs as a real process while `k2.storage.maintenance` compacts, merges and
expires under it; the result equals an unmaintained run of the same feed, row for row, seam for seam."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

from k2.ops.config import Settings, load_settings
from k2.ops.reconcile import reconcile
from k2.storage.catalog import TABLE_NAMES, open_catalog, read_table
from k2.storage.maintenance import MaintenancePolicy, maintain
from k2.storage.seams import DUPLICATES_PROPERTY, MESSAGES_PROPERTY, committed_offsets, summed_property
from tests.operational.answers import answers

ROOT = Path(__file__).resolve().parents[2]
# Aggressive on purpose: every run compacts, merges and expires, so maintenance races the flow's commits.
POLICY = MaintenancePolicy(retain_last=2, max_snapshot_age_seconds=None, min_files_to_compact=2, max_manifests=2)


def flow_process(data_dir: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "K2_DATA_DIR": str(data_dir),
        "K2_SOURCE": "synthetic",
        "K2_SYNTHETIC_MESSAGES": "25000",
        "K2_SYNTHETIC_SYMBOLS": "10",
        "K2_BATCH_SIZE": "500",
        "K2_EPOCH_SECONDS": "0.1",
        "K2_METRICS_PORT": "0",
    }
    log = open(data_dir.parent / f"{data_dir.name}-flow.log", "wb")  # noqa: SIM115 - a file: a pipe could fill up
    return subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "flows.ingest"], cwd=ROOT, env=env, stdout=log, stderr=log
    )


def landed(settings: Settings) -> dict[str, object]:
    tables = {name: open_catalog(settings).load_table((settings.namespace, name)) for name in TABLE_NAMES}
    order = [("source_topic", "ascending"), ("source_partition", "ascending"), ("source_offset", "ascending")]
    return {
        "rows": {
            name: read_table(t).sort_by(order if name != "sequence_gaps" else [("timestamp", "ascending")])
            for name, t in tables.items()
        },
        "seams": {name: committed_offsets(t) for name, t in tables.items()},
        "messages": {name: summed_property(t, MESSAGES_PROPERTY) for name, t in tables.items()},
        "duplicates": {name: summed_property(t, DUPLICATES_PROPERTY) for name, t in tables.items()},
    }


def test_maintenance_while_the_flow_ingests_changes_nothing_a_reader_sees(tmp_path):
    live = load_settings({}, data_dir=str(tmp_path / "live"))
    process = flow_process(live.data_path)
    runs, compacted, expired = 0, 0, 0
    try:
        while process.poll() is None:
            time.sleep(0.3)
            catalog = open_catalog(live)
            for name in TABLE_NAMES:
                if catalog.table_exists((live.namespace, name)):
                    report = maintain(catalog.load_table((live.namespace, name)), POLICY)
                    compacted += report.compacted_files
                    expired += report.expired_snapshots
            runs += 1
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == 0, (tmp_path / "live-flow.log").read_text()[-3000:]
    assert runs >= 2 and compacted and expired  # maintenance really ran under the flow
    catalog = open_catalog(live)
    for name in TABLE_NAMES:
        maintain(catalog.load_table((live.namespace, name)), POLICY)

    reference = load_settings({}, data_dir=str(tmp_path / "reference"))
    process = flow_process(reference.data_path)
    assert process.wait(timeout=600) == 0, (tmp_path / "reference-flow.log").read_text()[-3000:]

    got, want = landed(live), landed(reference)
    for name in TABLE_NAMES:
        assert got["rows"][name].equals(want["rows"][name]), name
    assert got["seams"] == want["seams"]
    assert got["messages"] == want["messages"]
    assert got["duplicates"] == want["duplicates"]
    assert all(report.balanced for report in reconcile(live))
    assert answers(live) == answers(reference)
    trades = open_catalog(live).load_table((live.namespace, "trades"))
    assert (
        len(trades.snapshots())
        <= 3
        < len(open_catalog(reference).load_table((reference.namespace, "trades")).snapshots())
    )
    assert isinstance(got["rows"]["trades"], pa.Table)
