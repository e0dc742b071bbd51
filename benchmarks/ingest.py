"""Ingest benchmark: the Bytewax flow into a committed Iceberg table vs a plain Python loop doing the same work.

Both sides process the same pre-generated messages (synthetic feed, ~0.1% invalid, ~0.2% duplicates, gaps and
reordering) with the same GC settings, in the same run, alternating, so the ratio is robust to a noisy machine.

    uv run python benchmarks/ingest.py                  # 1,000,000 messages, 3 rounds
    uv run python benchmarks/ingest.py --messages 50000 --rounds 1   # quick check (CI)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bytewax.testing import TestingSource, cluster_main, run_main

from benchmarks.common import REPORTS, machine, recorded, save_report, scratch, timed
from flows.ingest import build_flow
from k2.flow.steps import tune_process
from k2.ingest.pipeline import PartitionSteps, Pipeline
from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from k2.model.batch import RawBatch
from k2.ops.config import load_settings
from k2.storage.catalog import TABLE_NAMES, open_catalog, read_table


def plain_loop(batches: list[RawBatch], settings) -> int:
    """Decode, validate, sequence-check and dedupe in a plain loop: the same k2 functions, no Bytewax, no Iceberg."""
    pipeline = Pipeline(settings)
    partitions: dict[str, PartitionSteps] = {}
    kept = 0
    for raw in batches:
        steps = partitions.get(raw.key) or partitions.setdefault(raw.key, pipeline.for_partition())
        kept += len(steps.process(raw).records)
    return kept


def flow_run(batches: list[RawBatch], data_dir: Path, epoch_seconds: float, workers: int = 1) -> dict[str, int]:
    settings = load_settings({}, data_dir=str(data_dir), epoch_seconds=epoch_seconds)
    flow = build_flow(TestingSource(batches), settings)
    if workers == 1:
        run_main(flow, epoch_interval=timedelta(seconds=epoch_seconds))
    else:
        cluster_main(flow, [], 0, epoch_interval=timedelta(seconds=epoch_seconds), worker_count_per_proc=workers)
    catalog = open_catalog(settings)
    return {
        name: read_table(catalog.load_table((settings.namespace, name)), ["source_offset"]).num_rows
        for name in TABLE_NAMES
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--epoch-seconds", type=float, default=1.0)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1, help="Bytewax workers for the flow (like -w)")
    parser.add_argument("--out", type=Path, default=REPORTS / "ingest.json")
    args = parser.parse_args()

    started = time.perf_counter()
    feed = SyntheticFeed(FeedConfig(messages=args.messages, symbols=args.symbols, partitions=8))
    batches = list(feed_batches(feed, args.batch_size))
    sent = feed.stats.sent
    print(
        f"generated {sent:,} messages in {len(batches)} batches ({time.perf_counter() - started:.1f}s): {feed.stats}",
        flush=True,
    )
    settings = load_settings({})
    tune_process()

    # Warm-up on a small slice: the first commit imports pyiceberg's write path (~0.6 s measured), a one-off
    # cost that is not throughput.
    plain_loop(batches[:4], settings)
    with scratch("bench") as tmp:
        flow_run(batches[:4], tmp, args.epoch_seconds, args.workers)

    plain, flow = [], []
    landed: dict[str, int] = {}
    for round_no in range(args.rounds):
        plain.append(sent / timed(plain_loop, batches, settings)[0])
        with scratch("bench") as tmp:
            seconds, landed = timed(flow_run, batches, tmp, args.epoch_seconds, args.workers)
            flow.append(sent / seconds)
        print(
            f"round {round_no + 1}: plain {plain[-1]:,.0f} msg/s, flow {flow[-1]:,.0f} msg/s, landed {landed}",
            flush=True,
        )

    result = {
        "benchmark": "ingest",
        "recorded": recorded(),
        "messages": sent,
        "batch_size": args.batch_size,
        "epoch_seconds": args.epoch_seconds,
        "workers": args.workers,
        "rounds": args.rounds,
        "plain_msgs_per_s": statistics.median(plain),
        "flow_msgs_per_s": statistics.median(flow),
        "ratio": statistics.median(f / p for f, p in zip(flow, plain, strict=True)),
        "landed": landed,
        "injected": {
            "invalid": feed.stats.invalid,
            "duplicates": feed.stats.duplicates,
            "gaps": feed.stats.gaps,
            "reordered": feed.stats.reordered,
        },
        "machine": machine(),
    }
    save_report(result, args.out)
    print(f"\nplain loop  {result['plain_msgs_per_s']:>12,.0f} msg/s (median of {args.rounds})")
    print(f"flow        {result['flow_msgs_per_s']:>12,.0f} msg/s (median of {args.rounds}, Iceberg commits included)")
    print(f"ratio       {result['ratio']:>12.2f}  (target >= 0.5, and flow >= 150,000 msg/s)")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
