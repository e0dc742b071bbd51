"""Figures and targets out of each benchmark's JSON report, one reader per benchmark (`READERS`); the readers of
the query-side benchmarks (query, realtime, queryable_latency) are in query_figures.py.

A reader takes the parsed JSON and returns (size, figures, targets); a missing key raises, so a benchmark whose
output changed shape breaks the report loudly instead of dropping a figure. Ratios are computed here from the raw
figures (not the benchmarks' rounded ones), so a small ratio keeps its precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.reporting.model import MB, MIB, Figure, Target
from benchmarks.reporting.peer_figures import peers_bench
from benchmarks.reporting.query_figures import query, queryable_latency, realtime

Reader = Callable[[str, str, dict[str, Any]], tuple[str, list[Figure], list[Target]]]


def spread(ratios: list[float]) -> float | None:
    """Relative half-range of per-round ratios: how much this run alone moved."""
    if len(ratios) < 2:
        return None
    low, high = min(ratios), max(ratios)
    return (high - low) / (high + low)


def ingest(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    size = f"{d['messages']:,} messages, {d['rounds']} rounds, epoch {d['epoch_seconds']} s, {d['workers']} worker(s)"
    flow = Figure(
        f"{stem}.flow_vs_plain",
        file,
        "In-memory ingest: flow into Iceberg vs plain loop",
        "msgs/s",
        d["flow_msgs_per_s"],
        "flow",
        d["plain_msgs_per_s"],
        "plain loop",
        paired_ratio=d["ratio"],
    )
    targets = [
        Target(f"{stem}.flow_rate", file, "flow >= 150,000 msgs/s", d["flow_msgs_per_s"], 150_000, False, "msgs/s"),
        Target(f"{stem}.flow_ratio", file, "flow >= 0.5x plain loop", d["ratio"], 0.5, False, "x"),
    ]
    return size, [flow], targets


def kafka_ingest(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    latency = d["latency"]
    size = f"{d['messages']:,} messages; latency at {latency['rate']:,} msgs/s"
    flow_rate, plain_rate = d["flow_msgs_per_s"], d["plain_msgs_per_s"]
    figures = [
        Figure(
            f"{stem}.flow_vs_plain",
            file,
            "Kafka ingest: flow process vs plain consume + validate loop",
            "msgs/s",
            flow_rate,
            "flow",
            plain_rate,
            "plain consume loop",
        ),
        Figure(
            f"{stem}.flow_peak_rss",
            file,
            "Kafka ingest: flow process peak RSS",
            "MB",
            d["flow_peak_rss_bytes"] / MB,
            "peak RSS",
            lower_is_better=True,
        ),
    ]
    rss_mb, rss_mib = d["flow_peak_rss_bytes"] / MB, d["flow_peak_rss_bytes"] / MIB
    kcat = d.get("kcat_msgs_per_s")
    if kcat:  # runs before issue 17 had no C-client baseline
        figures.insert(
            0,
            Figure(
                f"{stem}.flow_vs_kcat",
                file,
                "Kafka ingest: flow process vs kcat (C consumer) to /dev/null",
                "msgs/s",
                flow_rate,
                "flow",
                kcat,
                "kcat",
            ),
        )
    if d.get("consume_only_msgs_per_s"):
        figures.append(
            Figure(
                f"{stem}.consume_only_vs_kcat",
                file,
                "Kafka ingest: Python consume-only loop vs kcat",
                "msgs/s",
                d["consume_only_msgs_per_s"],
                "Python consume only",
                kcat,
                "kcat" if kcat else None,
            )
        )
    p99_target = f"produce->committed p99 <= 1.5 s at {latency['rate']:,} msgs/s"
    p99_target = f"produce->committed p99 <= 1.5 s at {latency['rate']:,} msgs/s"
    targets = [
        Target(f"{stem}.flow_rate", file, "flow >= 150,000 msgs/s", flow_rate, 150_000, False, "msgs/s"),
        Target(f"{stem}.flow_ratio", file, "flow >= 0.5x plain consume", flow_rate / plain_rate, 0.5, False, "x"),
        Target(f"{stem}.rss", file, "flow peak RSS <= 400 MB", rss_mb, 400, True, "MB"),
        Target(f"{stem}.rss_mib", file, "flow peak RSS <= 400 MiB", rss_mib, 400, True, "MiB"),  # issue 17's unit
        Target(f"{stem}.latency_p99", file, p99_target, latency["p99_s"], 1.5, True, "s"),
    ]
    if kcat:
        targets.insert(0, Target(f"{stem}.kcat_ratio", file, "flow >= 0.4x kcat", flow_rate / kcat, 0.4, False, "x"))
    return size, figures, targets


def _against_raw_produce(
    stem: str, file: str, d: dict[str, Any], what: tuple[str, str, str, str], raw: str, rounds: str | None = None
) -> Figure:
    """A rate beside raw produce of the same messages in the same run; `what` is (name, title, key of the value, its
    label), `rounds` the value's list in `all_rounds`, whose per-round ratios give the spread."""
    name, title, key, label = what
    found = None
    if rounds:
        values, raws = (d.get("all_rounds", {}).get(k, []) for k in (rounds, "raw_produce"))
        found = spread([v / r for v, r in zip(values, raws, strict=True)])
    unit = raw.removeprefix("raw_produce_").removesuffix("_per_s") + "/s"
    return Figure(f"{stem}.{name}", file, title, unit, d[key], label, d[raw], "raw produce", spread=found)


def _beside_raw_produce(stem: str, file: str, d: dict[str, Any], size: str, raw: str, *figures: tuple):
    """A reader's answer for figures that each stand beside raw produce: `figures` are `_against_raw_produce`'s
    `what` tuples, each with the name of its per-round list (or None) last."""
    return size, [_against_raw_produce(stem, file, d, what[:4], raw, what[4]) for what in figures], []


def replay(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    return _beside_raw_produce(
        stem,
        file,
        d,
        f"{d['rows']:,} rows, {d['rounds']} rounds (best of each)",
        "raw_produce_rows_per_s",
        ("replay_vs_raw_produce", "Replay to a topic vs raw produce of the same messages", "replay_rows_per_s",
         "replay", "replay"),
        ("read_encode_vs_raw_produce", "Replay read + encode only (no Kafka) vs raw produce", "read_encode_rows_per_s",
         "read + encode", None),
    )  # fmt: skip


def feeds(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    """benchmarks/feeds.py: one feed process normalising and publishing a replay server's frames, beside raw produce
    of the same messages (one message per frame there, so frames/s and messages/s compare)."""
    size = f"{d['frames']:,} {d['exchange']} frames, {d['rounds']} rounds (best of each)"
    feed = "Exchange feed (websocket, normalise, confirmed produce) vs raw produce"
    alone = "Feed normalise + encode only (no socket, no Kafka) vs raw produce"
    return _beside_raw_produce(
        stem, file, d, size, "raw_produce_messages_per_s",
        ("feed_vs_raw_produce", feed, "feed_frames_per_s", "feed", "feed"),
        ("normalise_vs_raw_produce", alone, "normalise_frames_per_s", "normalise", None),
    )  # fmt: skip


def commit_latency(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    """benchmarks/commit_latency.py (its own helper's): the writer's commit latency with maintenance vs without, and
    how each side's latency moved from its first to its last tenth of commits (the issue asks for it to stay flat)."""
    p, plain, maintained = d["parameters"], d["without_maintenance"], d["with_maintenance"]
    size = (
        f"{p['commits']} commits of {p['trades_per_commit']} trades, maintenance every {p['maintenance_every']}, "
        f"{p['retain_last']} snapshots kept"
    )
    figures = [
        Figure(
            f"{stem}.maintained_vs_plain_last_{pct}",
            file,
            f"Commit latency, last 10% of commits: with maintenance vs without, {pct}",
            "ms",
            maintained["last_10pct_ms"][pct],
            "with maintenance",
            plain["last_10pct_ms"][pct],
            "without maintenance",
            lower_is_better=True,
        )
        for pct in ("p50", "p95")
    ]
    figures += [
        Figure(
            f"{stem}.{name}_growth_p50",
            file,
            f"Commit latency growth {label}: last 10% vs first 10% of commits, p50",
            "ms",
            side["last_10pct_ms"]["p50"],
            "last 10%",
            side["first_10pct_ms"]["p50"],
            "first 10%",
            lower_is_better=True,
        )
        for name, label, side in (
            ("plain", "without maintenance", plain),
            ("maintained", "with maintenance", maintained),
        )
    ]
    return size, figures, []


def decoders(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    """Each decode path's µs per message against K2's own path up to Arrow (validate_batch + to_arrow); Avro and
    Protobuf against JSON through the same pipeline path, when the run has it."""
    size = f"{d['messages']:,} valid trades, batches of {d['batch_size']:,}, median of {d['rounds']} rounds"
    timings = d["us_per_message"]
    own, same_path = "k2 validate_batch + to_arrow", "k2 json: Pipeline.validate + to_arrow"

    def baseline(name: str) -> str:
        framed = name.startswith(("k2 avro", "k2 protobuf"))
        return same_path if framed and same_path in timings else own

    figures = [
        Figure(
            f"{stem}.{name.replace(' ', '_').replace('+', 'and')}",
            file,
            f"Decode path: {name} vs {baseline(name)}",
            "µs/msg",
            us,
            name,
            timings[baseline(name)],
            baseline(name),
            lower_is_better=True,
        )
        for name, us in timings.items()
        if name != own
    ]
    return size, figures, []


def formats_flow(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    """benchmarks/formats_flow.py: the flow's msgs/s on Avro and Protobuf against the same trades in JSON, over the
    whole run (start-up included) and from the first commit on."""
    size = f"{d['messages']:,} valid trades per format, the flow process to the end of its topics"
    figures = []
    for key, when in (("flow_msgs_per_s", "start-up included"), ("flow_msgs_per_s_after_first_commit", "steady")):
        rates = d[key]
        figures += [
            Figure(
                f"{stem}.{fmt}.{key}",
                file,
                f"Flow msgs/s ({when}): {fmt} vs JSON",
                "msg/s",
                rate,
                fmt,
                rates["json"],
                "json",
            )
            for fmt, rate in rates.items()
            if fmt != "json"
        ]
    return size, figures, []


def first_commit(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    """benchmarks/first_commit.py: a restarted flow's process start -> first read / first commit (a `commit` or a
    `recovery` span) against the same run's import of flows.ingest, and whether its committed position moved."""
    p, r, b, clean = d["parameters"], d["restarts"], d["baselines"], d["clean"]
    size = (
        f"{p['messages']:,}-message backlog, {p['partitions']} partitions per topic, {p['restarts']} restarts + 1 "
        f"clean start, epoch {p['epoch_seconds']:g} s, snapshots {p['snapshot_seconds']:g} s, SIGKILL 1-2 s after the "
        "first commit"
    )
    imports, python = b["import_flows_ingest"], b["python_start"]
    first = r["start_to_first_commit"]
    figures = [
        Figure(
            f"{stem}.{name}_{pct}",
            file,
            f"Restart: process start -> {what} vs `import flows.ingest`, {pct}",
            "s",
            r[key][f"{pct}_s"],
            label,
            imports[f"{pct}_s"],
            "import flows.ingest",
            lower_is_better=True,
        )
        for name, key, what, label in (
            ("first_commit", "start_to_first_commit", "first commit (a commit or recovery span)", "first commit"),
            ("first_plain_commit", "start_to_first_plain_commit", "first `commit` span", "first commit span"),
            ("first_recovery_commit", "start_to_first_recovery_commit", "first `recovery` span", "first recovery"),
            ("first_read", "start_to_first_read", "first read", "first read"),
        )
        if r[key] is not None
        for pct in ("p50", "p95", "max")
        if name in ("first_commit", "first_read") or pct == "p50"
    ]
    epoch = p["epoch_seconds"]
    figures += [
        Figure(
            f"{stem}.read_to_commit_p50",
            file,
            "Restart: first read -> first commit vs the commit interval (K2_EPOCH_SECONDS), p50",
            "s",
            r["first_read_to_first_commit"]["p50_s"],
            "first read -> first commit",
            epoch,
            "commit interval",
            lower_is_better=True,
        ),
        Figure(
            f"{stem}.clean_first_commit",
            file,
            "Clean start (no recovery state, no tables): process start -> first commit vs its `import flows.ingest`",
            "s",
            clean["start_to_first_commit_s"],
            "first commit",
            clean["import_flows_ingest_s"],
            "import flows.ingest",
            lower_is_better=True,
        ),
        Figure(
            f"{stem}.import_vs_python_p50",
            file,
            "`python -c 'import flows.ingest'` vs `python -c pass`, p50",
            "s",
            imports["p50_s"],
            "import flows.ingest",
            python["p50_s"],
            "bare interpreter",
            lower_is_better=True,
        ),
        Figure(
            f"{stem}.position_moved",
            file,
            f"Restarts whose committed position (trades + quotes seams) moved, of {p['restarts']}",
            "%",
            100 * r["position_moved_share"],
            "moved",
        ),
    ]
    targets = [
        Target(
            f"{stem}.first_commit_p95",
            file,
            "process start -> first commit <= 3 s (restarts, p95)",
            first["p95_s"],
            d["target"]["start_to_first_commit_p95_s_max"],
            True,
            "s",
        ),
        Target(
            f"{stem}.position_moved",
            file,
            "committed position moves in >= 90% of restarts (killed 1-2 s after the first commit)",
            100 * r["position_moved_share"],
            90,
            False,
            "%",
        ),
    ]
    return size, figures, targets


def generic(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    """A benchmark this report has no reader for (e.g. a new one): its top-level ratios, shown as recorded."""
    ratios = d.get("ratios") if isinstance(d.get("ratios"), dict) else {}
    if isinstance(d.get("ratio"), int | float):
        ratios = {"ratio": d["ratio"], **ratios}
    figures = [
        Figure(
            f"{stem}.{name}",
            file,
            f"{d.get('benchmark', stem)}: {name} (as recorded)",
            "x",
            float(value),
            name,
            lower_is_better=None,
        )
        for name, value in ratios.items()
        if isinstance(value, int | float)
    ]
    parameters = d.get("parameters") if isinstance(d.get("parameters"), dict) else {}
    size = ", ".join(f"{k} {v}" for k, v in parameters.items() if isinstance(v, int | float | str)) or "as recorded"
    return size, figures, []


READERS: dict[str, Reader] = {
    "ingest": ingest,
    "kafka_ingest": kafka_ingest,
    "query": query,
    "realtime": realtime,
    "replay": replay,
    "queryable_latency": queryable_latency,
    "commit_latency": commit_latency,
    "decoders": decoders,
    "formats_flow": formats_flow,
    "first_commit": first_commit,
    "feeds": feeds,
    "peers_bench": peers_bench,
}
