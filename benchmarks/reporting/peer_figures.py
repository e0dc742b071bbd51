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


def _pairs(stem: str, file: str, rows: list[tuple]) -> list[Figure]:
    """One figure per row: (name, title, unit, K2's value, K2's label, the peer's value, the peer, lower is better)."""
    return [
        Figure(f"{stem}.{name}", file, title, unit, ours, label, theirs, peer, lower_is_better=lower)
        for name, title, unit, ours, label, theirs, peer, lower in rows
    ]


def _ingest(stem: str, file: str, ing: dict[str, Any]) -> list[Figure]:
    k2, sink, default = ing["k2"], ing["sink_1s"], ing["sink_default"]
    latency = ing["latency"]
    ours, theirs = latency["k2"], latency["sink_1s"]
    rate = f"{ours['rate']:,} msgs/s"
    ingest = "Ingest to committed Iceberg (start-up included)"
    rows = [("ingest_vs_sink_1s", ingest, "msgs/s", k2["msgs_per_s"], "K2 flow", sink["msgs_per_s"], SINK, False)]
    if "msgs_per_s" in default:
        rows.append(
            ("ingest_vs_sink_default", ingest, "msgs/s", k2["msgs_per_s"], "K2 flow", default["msgs_per_s"],
             SINK_DEFAULT, False)
        )  # fmt: skip
    for p in ("p50", "p99"):
        title = f"Produce -> committed {p} at {rate}"
        rows.append((f"latency_{p}_vs_sink", title, "s", ours[f"{p}_s"], "K2", theirs[f"{p}_s"], SINK, True))
    rss = "Ingest peak RSS (K2 flow process vs Connect JVM)"
    rows.append(
        ("ingest_rss_vs_sink", rss, "MB", k2["peak_rss_bytes"] / MB, "K2", sink["peak_rss_bytes"] / MB, SINK, True)
    )
    return _pairs(stem, file, rows)


def _queries(stem: str, file: str, q: dict[str, Any]) -> list[Figure]:
    rows = []
    questdb = f"{QUESTDB} /exec"
    for kind, methods in q["timings"].items():
        title, peer = QUERY_TITLES.get(kind, kind), methods["questdb"]
        for p in ("p50", "p95"):
            engine = methods["engine"][f"{p}_ms"]
            rows.append((f"{kind}_{p}_engine_vs_questdb", f"{title}, {p}", "ms", engine, "K2 engine",
                         peer[f"{p}_ms"], questdb, True))  # fmt: skip
        api = methods["api"]["p50_ms"]
        rows.append((f"{kind}_p50_api_vs_questdb", f"{title}, p50 over HTTP", "ms", api, "K2 API", peer["p50_ms"],
                     questdb, True))  # fmt: skip
    return _pairs(stem, file, rows)


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


def _table(intro: str, columns: tuple[str, ...], rows: list[tuple]) -> list[str]:
    """A paragraph and its markdown table, then a blank line."""
    body = [f"| {' | '.join(str(cell) for cell in row)} |" for row in rows]
    return [intro, "", f"| {' | '.join(columns)} |", "|" + "---|" * len(columns), *body, ""]


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
        expected = ing["expected"]
        tables = [(name, ing[name]["table"]) for name in ("k2", "sink_1s", "sink_default") if ing[name].get("table")]
        lines += _table(
            "Tables read back with one engine (pyiceberg scan -> DuckDB), against the sent messages "
            f"({expected['rows']:,} rows, price sum {expected['price_sum']}):",
            ("table", "rows", "duplicates", "lost", "exact sums"),
            [(name, f"{t['rows']:,}", t["duplicates"], t["lost"], t["sums_match"]) for name, t in tables],
        )
    crash = peers.get("crash")
    if crash:
        lines += _table(
            "Exactly once under SIGKILL (each kill after the system's own commit moved, 0-1 s later, while "
            "messages kept arriving):",
            ("system", "kills", "sent", "rows", "duplicates", "lost", "exact sums"),
            [
                (name, len(r["kills"]), f"{r['sent']:,}", f"{r['rows']:,}", r["duplicates"], r["lost"], r["sums_match"])
                for name, r in crash.items()
            ],
        )
    queries = peers.get("queries")
    if queries:
        answers = queries["answers"]
        lines += _table(
            "Answers of the first choices, K2's engine vs QuestDB (rows only one of them returned; the API "
            "checked by row count against the engine):",
            ("query", "rows (K2, QuestDB)", "only K2", "only QuestDB", "same", "API count = engine"),
            [
                (
                    QUERY_TITLES.get(kind, kind),
                    f"{a['rows'][0]:,}, {a['rows'][1]:,}",
                    a["only_k2"],
                    a["only_peer"],
                    a["same_answers"],
                    a["api_count_matches"],
                )
                for kind, a in answers.items()
            ],
        )[:-1]  # the VWAP remark below belongs to this table
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
