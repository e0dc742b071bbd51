"""The flow as a real process logs JSON lines an operator can follow: from a batch's source offsets to the Iceberg
snapshot whose seam covers them."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import msgspec
import pytest

from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from k2.ops.config import load_settings
from k2.storage.catalog import open_catalog
from tests.fixtures.flow import flow_process_env, run_flow_process
from tests.fixtures.market import fed_per_partition

ROOT = Path(__file__).resolve().parents[2]
DATA_TABLE = {"trade": "trades", "quote": "quotes"}


@pytest.mark.slow
def test_batch_and_commit_lines_trace_offsets_to_snapshots(tmp_path):
    env = flow_process_env(tmp_path / "k2", 6000, 6, K2_LOG_FORMAT="json", K2_LOG_LEVEL="debug", K2_METRICS_PORT="0")
    done = run_flow_process(env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [msgspec.json.decode(line) for line in done.stderr.splitlines() if line.startswith("{")]
    k2_lines = [line for line in lines if line["logger"].startswith("k2.")]
    assert k2_lines and all({"time", "level", "logger", "message"} <= line.keys() for line in k2_lines)

    batches = [line for line in k2_lines if line["logger"] == "k2.flow.steps" and "first_offset" in line]
    commits = [
        line for line in k2_lines if line["logger"] == "k2.storage.commit" and line["message"].startswith("committed")
    ]
    assert batches and commits
    # Every batch is named by its source position; together they cover each partition without a hole.
    covered: dict[str, list[tuple[int, int]]] = {}
    for batch in batches:
        key = f"{batch['topic']}/{batch['partition']}"
        covered.setdefault(key, []).append((batch["first_offset"], batch["next_offset"]))
    for ranges in covered.values():
        ranges.sort()
        assert ranges[0][0] == 0 and all(a[1] == b[0] for a, b in pairwise(ranges))
    # ... and end where the feed the process ran ends (regenerated here: K2_SYNTHETIC_*, the default seed).
    settings = load_settings({}, data_dir=str(tmp_path / "k2"))
    feed = SyntheticFeed(FeedConfig(messages=6_000, symbols=6, seed=settings.synthetic_seed))
    assert {key: ranges[-1][1] for key, ranges in covered.items()} == fed_per_partition(feed_batches(feed))

    # A message at offset o of partition p landed in the first commit of its table whose seam passes o; that line
    # names the snapshot, which is in the table's history.
    catalog = open_catalog(settings)
    snapshots = {
        name: {s.snapshot_id for s in catalog.load_table(("market_data", name)).snapshots()}
        for name in DATA_TABLE.values()
    }
    for key, ranges in covered.items():
        table = DATA_TABLE["quote" if "quote" in key else "trade"]
        last_offset = ranges[-1][1] - 1
        landing = next(c for c in commits if c["table"] == table and c["offsets"].get(key, 0) > last_offset)
        assert landing["snapshot_id"] in snapshots[table]
    # The rows the commit lines report add up to what the tables hold, and to the feed's valid, distinct messages.
    logged = {table: sum(c["rows"] for c in commits if c["table"] == table) for table in DATA_TABLE.values()}
    for table, rows in logged.items():
        assert rows == catalog.load_table(("market_data", table)).scan().to_arrow().num_rows, table
    assert sum(logged.values()) == feed.stats.sent - feed.stats.invalid - feed.stats.duplicates
