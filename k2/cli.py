"""The `k2` command line: `k2 ingest` runs the flow, `k2 summary` shows what landed."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

from k2.catalog import DEAD_LETTERS, QUOTES, SEQUENCE_GAPS, TABLE_NAMES, TRADES, open_catalog
from k2.config import ConfigError, Settings, load_settings
from k2.sink import DUPLICATES_PROPERTY, committed_offsets, read_table, summed_property


def summary(settings: Settings, out=sys.stdout) -> dict[str, int]:
    """Print row counts, seams, dead-letter reasons, gaps and a few rows; return the row counts."""
    catalog = open_catalog(settings)
    counts: dict[str, int] = {}
    print(f"warehouse {settings.resolved_warehouse}  catalog {settings.resolved_catalog_uri}", file=out)
    for name in TABLE_NAMES:
        identifier = (settings.namespace, name)
        if not catalog.table_exists(identifier):
            print(f"{settings.namespace}.{name}: not created yet", file=out)
            continue
        table = catalog.load_table(identifier)
        data = read_table(table)
        counts[name] = data.num_rows
        seam = committed_offsets(table)
        print(
            f"\n{settings.namespace}.{name}: {data.num_rows:,} rows, {len(table.snapshots())} snapshots, "
            f"committed up to {sum(seam.values()):,} source messages over {len(seam)} partitions",
            file=out,
        )
        if name in (TRADES, QUOTES):
            duplicates = sum(summed_property(table, DUPLICATES_PROPERTY).values())
            print(f"  duplicates dropped: {duplicates:,}", file=out)
            columns = ["symbol", "timestamp", "source_sequence"] + (
                ["price", "quantity", "side"] if name == TRADES else ["bid_price", "ask_price", "crossed"]
            )
            for row in data.select(columns).slice(0, 3).to_pylist():
                print("  " + "  ".join(f"{k}={v}" for k, v in row.items()), file=out)
        elif name == DEAD_LETTERS and data.num_rows:
            reasons = data.group_by("reason").aggregate([("reason", "count")]).sort_by([("reason_count", "descending")])
            for row in reasons.to_pylist():
                print(f"  {row['reason_count']:>6,}  {row['reason']}", file=out)
        elif name == SEQUENCE_GAPS and data.num_rows:
            missing = sum(data["missing_count"].to_pylist())
            print(f"  {missing:,} sequence numbers missing across {data.num_rows:,} events", file=out)
    return counts


def ingest(settings: Settings, workers: int = 1) -> None:
    """Run the ingest flow in this process (what `python -m bytewax.run flows.ingest` does)."""
    from bytewax.run import cli_main

    from flows.ingest import build_flow, default_source
    from k2.steps import tune_gc

    tune_gc()
    flow = build_flow(default_source(settings), settings)
    cli_main(flow, workers_per_process=workers, epoch_interval=timedelta(seconds=settings.epoch_seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="k2", description="K2 market-data lakehouse")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("ingest", help="run the ingest flow with the K2_* settings")
    run.add_argument("-w", "--workers", type=int, default=1)
    commands.add_parser("summary", help="show what has landed in the tables")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"k2: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "ingest":
        ingest(settings, args.workers)
    else:
        summary(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
