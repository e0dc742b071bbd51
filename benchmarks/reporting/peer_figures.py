"""Figures of the peers benchmark (benchmarks/peers_bench.py): each of K2's figures with the peer's figure of the
same run as its baseline, so the ratio is K2 / peer; and the report's "K2 beside its peers" section (a table,
the crash and answer checks, where K2 loses, and its chart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.reporting.model import MB, Figure, Target

PEERS_FILE = "peers.json"
SINK, SINK_DEFAULT, QUESTDB = "Iceberg sink (1 s commits)", "Iceberg sink (default 5 min commits)", "QuestDB"
QUERY_TITLES = {
    "point": "point: 1 symbol, 1 minute",
    "bars": "1-minute bars of a symbol-day",
    "latest": "latest trade per symbol",
    "asof": "as-of join trades -> quotes, 1 symbol-hour",
}
NOTES = Path(__file__).with_name("peers_notes.md")  # hand-written: what the figures mean, where K2 loses


def _pair(
    stem: str,
    file: str,
    name: str,
    title: str,
    unit: str,
    ours: float,
    theirs: float,
    peer: str,
    lower: bool,
    label: str = "K2",
) -> Figure:
    return Figure(f"{stem}.{name}", file, title, unit, ours, label, theirs, peer, lower_is_better=lower)


def _ingest(stem: str, file: str, ing: dict[str, Any]) -> list[Figure]:
    k2, sink = ing["k2"], ing["sink_1s"]
    figures = [
        _pair(
            stem,
            file,
            "ingest_vs_sink_1s",
            "Ingest to committed Iceberg (start-up included)",
            "msgs/s",
            k2["msgs_per_s"],
            sink["msgs_per_s"],
            SINK,
            False,
            "K2 flow",
        ),
    ]
    if "msgs_per_s" in ing["sink_default"]:
        figures.append(
            _pair(
                stem,
                file,
                "ingest_vs_sink_default",
                "Ingest to committed Iceberg (start-up included)",
                "msgs/s",
                k2["msgs_per_s"],
                ing["sink_default"]["msgs_per_s"],
                SINK_DEFAULT,
                False,
                "K2 flow",
            )
        )
    latency = ing["latency"]
    rate = f"{latency['k2']['rate']:,} msgs/s"
    figures += [
        _pair(
            stem,
            file,
            "latency_p50_vs_sink",
            f"Produce -> committed p50 at {rate}",
            "s",
            latency["k2"]["p50_s"],
            latency["sink_1s"]["p50_s"],
            SINK,
            True,
        ),
        _pair(
            stem,
            file,
            "latency_p99_vs_sink",
            f"Produce -> committed p99 at {rate}",
            "s",
            latency["k2"]["p99_s"],
            latency["sink_1s"]["p99_s"],
            SINK,
            True,
        ),
        _pair(
            stem,
            file,
            "ingest_rss_vs_sink",
            "Ingest peak RSS (K2 flow process vs Connect JVM)",
            "MB",
            k2["peak_rss_bytes"] / MB,
            sink["peak_rss_bytes"] / MB,
            SINK,
            True,
        ),
    ]
    return figures


def _queries(stem: str, file: str, q: dict[str, Any]) -> list[Figure]:
    figures = []
    for kind, methods in q["timings"].items():
        title = QUERY_TITLES.get(kind, kind)
        for p in ("p50", "p95"):
            figures.append(
                _pair(
                    stem,
                    file,
                    f"{kind}_{p}_engine_vs_questdb",
                    f"{title}, {p}",
                    "ms",
                    methods["engine"][f"{p}_ms"],
                    methods["questdb"][f"{p}_ms"],
                    f"{QUESTDB} /exec",
                    True,
                    "K2 engine",
                )
            )
        figures.append(
            _pair(
                stem,
                file,
                f"{kind}_p50_api_vs_questdb",
                f"{title}, p50 over HTTP",
                "ms",
                methods["api"]["p50_ms"],
                methods["questdb"]["p50_ms"],
                f"{QUESTDB} /exec",
                True,
                "K2 API",
            )
        )
    return figures


def peers_bench(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    if "skipped" in d:
        return f"skipped: {d['skipped']}", [], []
    p = d["parameters"]
    size = (
        f"{p['messages']:,} messages, {p['kills']} kills at {p['crash_rate']:,} msgs/s, {p['rows']:,} query rows,"
        f" {p['queries']} queries per method" + (" (CI size)" if d.get("ci") else "")
    )
    figures: list[Figure] = []
    if "ingest" in d:
        figures += _ingest(stem, file, d["ingest"])
    if "queries" in d:
        figures += _queries(stem, file, d["queries"])
    targets = []
    for name, run in d.get("crash", {}).items():
        exact = run["duplicates"] == 0 and run["lost"] == 0 and run["sums_match"]
        targets.append(
            Target(
                f"{stem}.crash_{name}_exact",
                file,
                f"{name}: no duplicate or lost row after {len(run['kills'])} SIGKILLs",
                0 if exact else 1,
                0,
                True,
                "faults",
            )
        )
    return size, figures, targets


def _ratio_word(f: Figure) -> str:
    ratio = f.ratio
    if ratio is None:
        return ""
    better = ratio < 1 if f.lower_is_better else ratio > 1
    return f"{ratio:.3g} ({'K2 better' if better else '**K2 worse**'})"


def section(peers: dict[str, Any] | None, figures: list[Figure], chart: str | None) -> list[str]:
    """The report's "K2 beside its peers" section."""
    lines = ["## K2 beside its peers", ""]
    if peers is None:
        return [*lines, "No peers run in this report (`benchmarks/peers_bench.py`).", ""]
    if "skipped" in peers:
        return [*lines, f"Skipped: {peers['skipped']}.", ""]
    load = peers.get("load_average_1_5_15m", {})
    lines += [
        "The Apache Iceberg Kafka Connect sink and QuestDB, run by `benchmarks/peers_bench.py` on the same broker,"
        " data and machine as K2, in one run; each ratio is K2's figure / the peer's (below 1 is better for times"
        " and memory, above 1 for throughput). Machine load (1/5/15-min averages) during the run: "
        + ", ".join(f"{k} {v}" for k, v in load.items())
        + ".",
        "",
        "| figure | K2 | peer | K2 / peer |",
        "|---|---|---|---|",
    ]
    for f in figures:
        lines.append(
            f"| {f.title} | {_num(f.value, f.unit)} ({f.label}) | {_num(f.baseline, f.unit)} "
            f"({f.baseline_label}) | {_ratio_word(f)} |"
        )
    lines.append("")
    lines += _checks(peers)
    losses = [f for f in figures if f.ratio is not None and not (f.ratio < 1 if f.lower_is_better else f.ratio > 1)]
    lines += [
        "**Where K2 loses in this run:** "
        + (
            "; ".join(f"{f.title} vs {f.baseline_label} ({f.ratio:.3g}x)" for f in losses)
            if losses
            else "nowhere in this run"
        )
        + ".",
        "",
    ]
    if chart:
        lines += [f"![peers]({chart})", ""]
    if NOTES.exists():
        lines += [*NOTES.read_text().strip().splitlines(), ""]
    return lines


def _checks(peers: dict[str, Any]) -> list[str]:
    lines = []
    ing = peers.get("ingest")
    if ing:
        lines += [
            "Tables read back with one engine (pyiceberg scan -> DuckDB), against the sent messages "
            f"({ing['expected']['rows']:,} rows, price sum {ing['expected']['price_sum']}):",
            "",
            "| table | rows | duplicates | lost | exact sums |",
            "|---|---|---|---|---|",
        ]
        for name in ("k2", "sink_1s", "sink_default"):
            t = ing[name].get("table")
            if t:
                lines.append(f"| {name} | {t['rows']:,} | {t['duplicates']} | {t['lost']} | {t['sums_match']} |")
        lines.append("")
    crash = peers.get("crash")
    if crash:
        lines += [
            "Exactly once under SIGKILL (each kill after the system's own commit moved, 0-1 s later, while "
            "messages kept arriving):",
            "",
            "| system | kills | sent | rows | duplicates | lost | exact sums |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, run in crash.items():
            lines.append(
                f"| {name} | {len(run['kills'])} | {run['sent']:,} | {run['rows']:,} | {run['duplicates']}"
                f" | {run['lost']} | {run['sums_match']} |"
            )
        lines.append("")
    queries = peers.get("queries")
    if queries:
        lines += [
            "Answers of the first choices, K2's engine vs QuestDB (rows only one of them returned; the API "
            "checked by row count against the engine):",
            "",
            "| query | rows (K2, QuestDB) | only K2 | only QuestDB | same | API count = engine |",
            "|---|---|---|---|---|---|",
        ]
        for kind, a in queries["answers"].items():
            lines.append(
                f"| {QUERY_TITLES.get(kind, kind)} | {a['rows'][0]:,}, {a['rows'][1]:,} | {a['only_k2']} "
                f"| {a['only_peer']} | {a['same_answers']} | {a['api_count_matches']} |"
            )
        bars = queries["answers"].get("bars", {})
        if bars.get("vwap_digits_differ"):
            lines.append(
                f"\nVWAP: {bars['vwap_digits_differ']} bars differ in their digits: K2 rounds VWAP to 8 "
                "decimals (half even), QuestDB keeps its decimal division's scale; equal once rounded."
            )
        q = queries["questdb"]
        lines += [
            "",
            f"QuestDB: {queries['table']['rows']:,} trades + as many quotes, loaded in "
            f"{q.get('load_seconds')} s, {q['size_bytes'] / MB:,.0f} MB on disk (K2's trades table alone: "
            f"{queries['table']['size_bytes'] / MB:,.0f} MB), start-up {q['startup_s']} s.",
            "",
        ]
    return lines


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit in ("msgs/s", "MB"):
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:.3g} {unit}"
