"""Commit latency as snapshots accumulate: the flow's own commit path (`IcebergWriter`) appending a small batch N
times to a fresh table, once without maintenance and once with `k2.storage.maintenance.maintain` every K commits, in the
same run (alternating blocks of commits, so a noisy machine hurts both sides alike).

Latency is the writer's commit time (sort, Parquet, manifests, metadata, catalog), maintenance time is reported
apart. The maintained table is refreshed in the writer after each run, as a flow running maintenance itself would.

    uv run python benchmarks/commit_latency.py                          # 300 commits, maintenance every 25
    uv run python benchmarks/commit_latency.py --commits 100 --every 20 # quick check
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPORTS, percentile, recorded, save_report, scratch, timed
from k2.ingest.columnar import ArrowBatch
from k2.ingest.pipeline import Pipeline
from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from k2.ops.config import load_settings
from k2.storage.catalog import TRADES, open_catalog
from k2.storage.maintenance import MaintenancePolicy, maintain
from k2.storage.writer import IcebergWriter

REPORT = REPORTS / "commit-latency.json"


def trade_batches(count: int, size: int) -> list[ArrowBatch]:
    """`count` Arrow batches of about `size` trades each, through the flow's own steps."""
    settings = load_settings({})
    feed = SyntheticFeed(FeedConfig(messages=count * size * 3, partitions=1))
    steps = Pipeline(settings).for_partition()
    batches = []
    for raw in feed_batches(feed, batch_size=size):
        if raw.topic != feed.config.trades_topic:
            continue
        batches.append(steps.to_arrow(raw))
        if len(batches) == count:
            return batches
    raise RuntimeError(f"the feed gave only {len(batches)} trade batches")


class Side:
    """One table being committed to, with or without maintenance."""

    def __init__(self, root: Path, name: str, every: int | None, policy: MaintenancePolicy):
        settings = load_settings({}, data_dir=str(root / name))
        self.writer = IcebergWriter(open_catalog(settings), settings.namespace, commit_interval_seconds=3600)
        self.every, self.policy = every, policy
        self.latencies: list[float] = []
        self.maintenance: list[float] = []
        self.commits = 0

    def commit(self, batch: ArrowBatch) -> None:
        self.writer.write(batch)
        self.writer.commit(side_tables=False)
        self.latencies.append(self.writer.commits[-1].seconds)
        self.commits += 1
        if self.every and self.commits % self.every == 0:
            self.maintenance.append(timed(maintain, self.writer.tables[TRADES], self.policy)[0])
            self.writer.tables[TRADES] = self.writer.tables[TRADES].refresh()

    def summary(self) -> dict:
        n = len(self.latencies)
        tenth = max(1, n // 10)
        table = self.writer.tables[TRADES].refresh()
        return {
            "commits": n,
            "first_10pct_ms": _percentiles(self.latencies[:tenth]),
            "last_10pct_ms": _percentiles(self.latencies[-tenth:]),
            "all_ms": _percentiles(self.latencies),
            "maintenance_runs": len(self.maintenance),
            "maintenance_ms": _percentiles(self.maintenance) if self.maintenance else None,
            "snapshots_at_end": len(table.snapshots()),
            "manifests_at_end": len(table.current_snapshot().manifests(table.io)),
            "metadata_json_bytes_at_end": Path(table.metadata_location.removeprefix("file://")).stat().st_size,
        }


def _percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5, "upper") * 1000, 2),
        "p95": round(percentile(values, 0.95, "upper") * 1000, 2),
        "mean": round(statistics.fmean(values) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--every", type=int, default=25, help="maintenance every this many commits")
    parser.add_argument("--batch", type=int, default=200, help="trades per commit")
    parser.add_argument("--retain", type=int, default=5, help="snapshots kept by expiry")
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    batches = trade_batches(args.commits, args.batch)
    policy = MaintenancePolicy(retain_last=args.retain, max_snapshot_age_seconds=None, min_files_to_compact=4)
    with scratch("commit-latency") as tmp:
        plain = Side(tmp, "plain", None, policy)
        maintained = Side(tmp, "maintained", args.every, policy)
        block = 10
        for start in range(0, args.commits, block):
            for side in (plain, maintained) if (start // block) % 2 == 0 else (maintained, plain):
                for batch in batches[start : start + block]:
                    side.commit(batch)
        result = {
            "benchmark": "commit_latency",
            "recorded": recorded(),
            "parameters": {
                "commits": args.commits,
                "maintenance_every": args.every,
                "trades_per_commit": args.batch,
                "retain_last": args.retain,
            },
            "without_maintenance": plain.summary(),
            "with_maintenance": maintained.summary(),
        }
    save_report(result, args.report)
    for name in ("without_maintenance", "with_maintenance"):
        side = result[name]
        print(
            f"{name:>20}: first 10% p50 {side['first_10pct_ms']['p50']} ms p95 {side['first_10pct_ms']['p95']} ms;"
            f" last 10% p50 {side['last_10pct_ms']['p50']} ms p95 {side['last_10pct_ms']['p95']} ms;"
            f" {side['snapshots_at_end']} snapshots, {side['manifests_at_end']} manifests,"
            f" metadata {side['metadata_json_bytes_at_end']:,} B"
            + (f"; maintenance p50 {side['maintenance_ms']['p50']} ms" if side["maintenance_ms"] else "")
        )
    print(f"report: {args.report}")


if __name__ == "__main__":
    main()
