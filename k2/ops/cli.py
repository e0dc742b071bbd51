"""The `k2` command line: `summary`, `produce`, `schemas register`, `load`, `feed`, `reconcile`, `replay`, `maintain`,
`backup`, `restore`.

The flow itself runs with Bytewax's runner: `python -m bytewax.run flows.ingest` (the domain never imports flows/).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from k2.feeds import command as feed
from k2.ops.config import ConfigError, Settings, load_settings
from k2.storage.catalog import DEAD_LETTERS, QUOTES, SEQUENCE_GAPS, TABLE_NAMES, TRADES, open_catalog, read_table
from k2.storage.seams import DUPLICATES_PROPERTY, committed_offsets, summed_property


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


def produce(settings: Settings, args: argparse.Namespace) -> int:
    """Publish messages keyed by instrument, from a file or the synthetic feed; every delivery is confirmed."""
    from k2.kafka.admin import ensure_topics
    from k2.kafka.producer import instrument_key, publish
    from k2.loaders.synthetic import FeedConfig, SyntheticFeed

    if not settings.kafka_bootstrap:
        print("k2: set K2_KAFKA_BOOTSTRAP (e.g. `make kafka-up`)", file=sys.stderr)
        return 2
    topics = {"trade": settings.trades_topic, "quote": settings.quotes_topic}
    ensure_topics(settings.kafka_bootstrap, topics.values(), settings.kafka_partitions)
    encode = None
    if args.format != "json":
        from k2.formats.commands import encoder

        if (encode := encoder(settings, args.format)) is None:
            return 2
    if args.file:
        topic = topics[args.kind]

        def messages():
            with open(args.file, "rb") as lines:
                for line in lines:
                    value = line.rstrip(b"\r\n")
                    yield topic, instrument_key(value), value

        total = None
    else:
        feed = SyntheticFeed(
            FeedConfig(messages=args.synthetic, symbols=settings.synthetic_symbols, seed=settings.synthetic_seed)
        )
        messages = lambda: ((topics[kind], key, value) for kind, key, value in feed.messages())  # noqa: E731
        total = args.synthetic
    progress = Progress(total)
    found = messages() if encode is None else ((t, key, encode(t, value)) for t, key, value in messages())
    sent = publish(settings.kafka_bootstrap, found, progress=progress.update)
    progress.done(sent)
    return 0


def load_command(settings: Settings, args: argparse.Namespace) -> int:
    """Load ASX tick files or a wire-model file: publish to Kafka, or write NDJSON for the file source.

    Every input line goes on as one message (a bad line as its raw bytes, which the flow dead-letters), so the
    flow's accounting covers the whole file; the bad lines are also listed here with their file and line.
    """
    from pathlib import Path

    from k2 import loaders

    to = args.to or ("files" if args.out else "kafka")
    if to == "files" and not args.out:
        print("k2: --to files needs --out DIR", file=sys.stderr)
        return 2
    if to == "kafka" and (args.out or not settings.kafka_bootstrap):
        problem = "--out writes files, not to Kafka" if args.out else "set K2_KAFKA_BOOTSTRAP, or give --out DIR"
        print(f"k2: {problem}", file=sys.stderr)
        return 2
    try:
        found = loaders.load_asx(args.asx) if args.asx else loaders.load_file(args.file, args.kind, args.format)
    except (OSError, ValueError) as exc:
        print(f"k2: {exc}", file=sys.stderr)
        return 2
    tally = loaders.Tally()
    messages = tally.count(found)
    progress = Progress(None)
    if to == "kafka":
        from k2.kafka.admin import ensure_topics
        from k2.kafka.producer import publish

        topics = {"trade": settings.trades_topic, "quote": settings.quotes_topic}
        ensure_topics(settings.kafka_bootstrap, topics.values(), settings.kafka_partitions)
        sent = publish(
            settings.kafka_bootstrap, ((topics[m.kind], m.key, m.value) for m in messages), progress=progress.update
        )
        progress.done(sent)
        where = ", ".join(topics.values())
    else:
        paths = loaders.write_ndjson(messages, Path(args.out), progress=progress.update)
        progress.update(tally.total)
        print(file=sys.stderr)
        where = ", ".join(f"{paths[kind]} (K2_INPUT_KIND={kind})" for kind in paths)
    for error in tally.errors[:20]:
        print(f"  bad line {error}", file=sys.stderr)
    more = tally.error_count - min(len(tally.errors), 20)
    unlisted = f", {more:,} not listed" if more else ""
    print(
        f"{tally.by_kind['trade']:,} trades, {tally.by_kind['quote']:,} quotes -> {where}; "
        f"{tally.error_count:,} bad lines sent on as raw bytes (dead letters){unlisted}",
        file=sys.stderr,
    )
    return 0


class Progress:
    """Rows, rate and ETA on one refreshed line of stderr."""

    def __init__(self, total: int | None):
        import time

        self.total, self._clock, self._start = total, time.monotonic, time.monotonic()

    def update(self, count: int) -> None:
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = count / elapsed
        eta = f", ETA {(self.total - count) / rate:,.0f}s" if self.total else ""
        print(f"\r{count:,} sent, {rate:,.0f}/s{eta}   ", end="", file=sys.stderr, flush=True)

    def done(self, count: int) -> None:
        self.update(count)
        print(f"\n{count:,} messages confirmed by the broker", file=sys.stderr)


def replay_command(settings: Settings, args: argparse.Namespace) -> int:
    """Replay trades/quotes of a time range from Iceberg, in event order, into Kafka topics (delivery confirmed)."""
    from k2.query import QueryEngine, QueryError
    from k2.query.params import parse_list, parse_time, time_range
    from k2.replay import Replay, describe, replay_to_kafka, topics_for

    if not settings.kafka_bootstrap:
        print("k2: set K2_KAFKA_BOOTSTRAP (e.g. `make kafka-up`)", file=sys.stderr)
        return 2
    engine = QueryEngine.from_settings(settings)
    try:
        start, end = time_range(args.start, args.end)
        if start is not None and end is not None and start >= end:  # an empty replay is surely a typing mistake
            raise QueryError("start must be before end (the range is [start, end))")
        replay = Replay(
            engine,
            start=start,
            end=end,
            symbols=parse_list(args.symbols),
            exchange=args.exchange,
            kinds=args.kinds,
            as_of=parse_time(args.as_of, "as_of"),
        )
        topics = topics_for(args.prefix, args.trades_topic, args.quotes_topic, args.topic)
        total = replay.count()
        print(f"{describe(replay)}: {total:,} rows", file=sys.stderr)
        progress = Progress(total)
        result = replay_to_kafka(
            replay,
            settings.kafka_bootstrap,
            topics,
            speed=args.speed,
            progress=progress.update,
            partitions=settings.kafka_partitions,
        )
    except QueryError as exc:
        print(f"k2: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.close()
    progress.done(result.rows)
    print(f"-> {', '.join(sorted(set(result.topics.values())))} in {result.seconds:,.1f}s", file=sys.stderr)
    return 0


def reconcile_command(settings: Settings) -> int:
    from k2.kafka.admin import partitions_of, watermarks
    from k2.ops.reconcile import format_reports, reconcile

    marks = None
    if settings.kafka_bootstrap:
        topics = [settings.trades_topic, settings.quotes_topic]
        marks = watermarks(settings.kafka_bootstrap, partitions_of(settings.kafka_bootstrap, topics))
    reports = reconcile(settings, marks)
    print(format_reports(reports))
    return 0 if all(r.balanced and not r.past_the_topic_end for r in reports) else 1


def maintain_command(settings: Settings, args: argparse.Namespace) -> int:
    """Run table maintenance on the chosen tables and print what it did to each."""
    from k2.storage.maintenance import MIB, MaintenancePolicy, maintain_tables

    policy = MaintenancePolicy(
        retain_last=args.retain_last,
        max_snapshot_age_seconds=None if args.max_age <= 0 else args.max_age,
        compact=not args.no_compact,
        expire=not args.no_expire,
        small_file_bytes=int(args.small_file_mb * MIB),
        target_file_bytes=int(args.target_file_mb * MIB),
        min_files_to_compact=args.min_files,
        orphan_age_seconds=args.orphans_older_than,
    )
    names = args.tables.split(",") if args.tables else list(TABLE_NAMES)
    unknown = [name for name in names if name not in TABLE_NAMES]
    if unknown:
        print(f"k2: unknown table(s) {', '.join(unknown)}; choose from {', '.join(TABLE_NAMES)}", file=sys.stderr)
        return 2
    catalog = open_catalog(settings)
    names = [name for name in names if catalog.table_exists((settings.namespace, name))]
    for report in maintain_tables(catalog, settings.namespace, names, policy):
        print(report.line())
    return 0


def backup_command(settings: Settings, args: argparse.Namespace) -> int:
    from k2.storage.backup import BackupError, RestoreError, backup, restore

    try:
        if args.command == "backup":
            manifest = backup(settings, args.path)
            print(f"backed up {len(manifest.tables)} tables, {len(manifest.files):,} files to {args.path}")
        else:
            recovery = Path(os.environ.get("K2_RECOVERY_DIR") or settings.data_path / "recovery")
            manifest = restore(settings, args.path, recovery_dir=recovery)
            print(f"restored {len(manifest.tables)} tables as of {manifest.created_at} into {manifest.warehouse}")
            print(f"Bytewax recovery state (ahead of the restored tables) moved aside from {recovery} if present")
    except (BackupError, RestoreError) as exc:
        print(f"k2: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="k2", description="K2 market-data lakehouse")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("summary", help="show what has landed in the tables")
    pub = commands.add_parser("produce", help="publish messages to the trades/quotes topics")
    source = pub.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="one message per line")
    source.add_argument("--synthetic", type=int, metavar="N", help="N messages of the synthetic feed")
    pub.add_argument("--kind", choices=["trade", "quote"], default="trade", help="what the file holds")
    pub.add_argument(
        "--format",
        choices=["json", "avro", "protobuf"],
        default="json",
        help="Avro/Protobuf: Confluent wire format with K2's schemas (K2_SCHEMA_REGISTRY_URL)",
    )
    schemas = commands.add_parser("schemas", help="K2's Avro/Protobuf schemas in the schema registry")
    schemas.add_argument("action", choices=["register"], help="register them under the trades/quotes subjects")
    schemas.add_argument(
        "--format", choices=["avro", "protobuf"], default="avro", help="which of them (one per subject)"
    )
    load = commands.add_parser("load", help="load ASX tick files or an NDJSON/CSV file: to Kafka or NDJSON files")
    files = load.add_mutually_exclusive_group(required=True)
    files.add_argument("--asx", metavar="DIR", help="ASX sample layout: trades/, quotes/, reference-data/")
    files.add_argument("--file", help="wire messages: NDJSON, or CSV with a header of wire field names")
    load.add_argument("--format", choices=["ndjson", "csv"], help="of --file (default: by suffix, .csv or NDJSON)")
    load.add_argument("--kind", choices=["trade", "quote"], default="trade", help="what --file holds")
    load.add_argument("--to", choices=["kafka", "files"], help="default: files with --out, else Kafka")
    load.add_argument("--out", metavar="DIR", help="write trades.ndjson / quotes.ndjson here (for K2_SOURCE=file)")
    feed.add_parser(commands)
    commands.add_parser("reconcile", help="per partition: committed offset, watermarks, and the accounting")
    rep = commands.add_parser("replay", help="replay trades/quotes from Iceberg in event order into Kafka topics")
    rep.add_argument("--start", help="inclusive: ISO-8601 (no offset = UTC) or µs")
    rep.add_argument("--end", help="exclusive, same forms as --start")
    rep.add_argument("--symbols", help="comma-separated (default: all)")
    rep.add_argument("--exchange", help="only this exchange")
    rep.add_argument("--kinds", default="trade,quote", help="trade, quote or trade,quote (default)")
    rep.add_argument("--as-of", help="read the newest snapshots committed at or before this time")
    rep.add_argument("--speed", type=float, help="N x real time (1 = as recorded); default: as fast as possible")
    rep.add_argument("--prefix", default="replay", help="topics <prefix>.trades / <prefix>.quotes (default replay)")
    rep.add_argument("--trades-topic", help="topic for trades (default <prefix>.trades)")
    rep.add_argument("--quotes-topic", help="topic for quotes (default <prefix>.quotes)")
    rep.add_argument("--topic", help="one topic for both kinds (each message gets a k2.kind header)")
    mnt = commands.add_parser("maintain", help="compact small files, merge manifests, expire snapshots, delete files")
    mnt.add_argument("--tables", help="comma-separated (default: all four)")
    mnt.add_argument("--retain-last", type=int, default=10, help="newest snapshots always kept (default 10)")
    mnt.add_argument("--max-age", type=float, default=3600, help="snapshots younger than this many seconds are kept")
    mnt.add_argument("--no-compact", action="store_true", help="leave data files as they are")
    mnt.add_argument("--no-expire", action="store_true", help="keep every snapshot")
    mnt.add_argument("--small-file-mb", type=float, default=32, help="files below this are compacted (default 32)")
    mnt.add_argument("--target-file-mb", type=float, default=128, help="input per rewritten file (default 128)")
    mnt.add_argument("--min-files", type=int, default=4, help="small files a partition needs to be compacted")
    mnt.add_argument("--orphans-older-than", type=float, metavar="SECONDS", help="also delete unreferenced files")
    for name, text in (("backup", "copy the catalog and warehouse"), ("restore", "restore a backup in place")):
        command = commands.add_parser(name, help=f"{text} (SQLite catalog, local warehouse)")
        command.add_argument("path", type=Path, help="backup folder")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"k2: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "produce":
        return produce(settings, args)
    elif args.command == "schemas":
        from k2.formats.commands import register_command

        return register_command(settings, args.format)
    elif args.command == "load":
        return load_command(settings, args)
    elif args.command == "feed":
        return feed.feed_command(settings, args)
    elif args.command == "reconcile":
        return reconcile_command(settings)
    elif args.command == "replay":
        return replay_command(settings, args)
    elif args.command == "maintain":
        return maintain_command(settings, args)
    elif args.command in ("backup", "restore"):
        return backup_command(settings, args)
    else:
        summary(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
