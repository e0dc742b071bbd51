"""Figures and targets of the query-side benchmarks' JSON reports: benchmarks/query.py (engine, pyiceberg and the
API against the raw DuckDB floor), benchmarks/realtime.py (realtime reads against Iceberg-only ones) and
benchmarks/queryable_latency.py (produce -> returned by the engine against produce -> committed). Readers as in
figures.py, which lists them all.
"""

from __future__ import annotations

from typing import Any

from benchmarks.reporting.model import MB, Figure, Target

QUERY_TARGETS = {  # the query benchmark checks these itself; the report shows them with the rest
    "point_p95_ms": ("point p95 <= {limit:g} ms", "ms"),
    "point_p95_vs_floor": ("point p95 <= {limit:g}x the DuckDB floor", "x"),
    "bars_p95_ms": ("bars p95 <= {limit:g} ms", "ms"),
    "api_point_p95_ms": ("API point p95 <= {limit:g} ms at 16 clients", "ms"),
}


QUERY_TITLES = {
    "point": "Point query (1 symbol, 1 minute)",
    "bars": "1-minute bars (1 symbol-day)",
    "latest": "Latest trade per symbol",
}


def query(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    p, t, m = d["parameters"], d["table"], d["measurements"]
    size = (
        f"{t['rows']:,} rows in {t['files']} files / {t['row_groups']} row groups, {p['queries']} queries, "
        f"{p['clients']} API clients{' (quick)' if p['quick'] else ''}"
    )
    figures = []
    for query_name, title in QUERY_TITLES.items():
        floor = m[query_name]["duckdb_floor"]
        methods = ["engine", "pyiceberg"] if query_name != "latest" else ["engine_cold", "engine_warm", "pyiceberg"]
        for method in methods:
            for pct in ("p50", "p95"):
                if query_name == "latest" and pct == "p95":
                    continue  # the cold scans are 2-3 runs: a p95 of them is their max
                figures.append(
                    Figure(
                        f"{stem}.{query_name}_{method}_{pct}",
                        file,
                        f"{title}: {method} vs raw DuckDB floor, {pct}",
                        "ms",
                        m[query_name][method][f"{pct}_ms"],
                        method,
                        floor[f"{pct}_ms"],
                        "DuckDB floor",
                        lower_is_better=True,
                    )
                )
    api, engine = m["api_point"], m["point"]["engine"]
    clients = api["concurrent"]["clients"]
    figures += [
        Figure(
            f"{stem}.api_point_{pct}",
            file,
            f"API point query at {clients} clients vs the engine alone, {pct}",
            "ms",
            api["concurrent"][f"{pct}_ms"],
            f"API, {clients} clients",
            engine[f"{pct}_ms"],
            "engine in-process",
            lower_is_better=True,
        )
        for pct in ("p50", "p95")
    ]
    figures.append(
        Figure(
            f"{stem}.api_peak_rss",
            file,
            f"API process peak RSS (after {api['concurrent']['n']:,} requests)",
            "MB",
            api["rss_peak_bytes"] / MB,
            "peak RSS",
            lower_is_better=True,
        )
    )
    targets = []
    for name, (description, unit) in QUERY_TARGETS.items():
        target = d["targets"][name]
        value, limit = target["value"], target["limit"]
        targets.append(Target(f"{stem}.{name}", file, description.format(limit=limit), value, limit, True, unit))
    return size, figures, targets


def realtime(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    size = f"{d['committed_messages']:,} committed, {d['tail_messages']:,} in the tail, {d['queries']} queries"
    lat, limit = d["latency"], d["target"]["realtime_adds_p95_ms_max"]
    titles = {"trades": "Realtime trades (1 symbol, last minute)", "latest": "Realtime latest (1 symbol)"}
    figures, targets = [], []
    for name, title in titles.items():
        for pct in ("p50", "p95"):
            value, base = lat[f"{name}_rt"][f"{pct}_ms"], lat[name][f"{pct}_ms"]
            figures.append(
                Figure(
                    f"{stem}.{name}_{pct}",
                    file,
                    f"{title} vs Iceberg-only, {pct}",
                    "ms",
                    value,
                    "realtime",
                    base,
                    "Iceberg only",
                    lower_is_better=True,
                    difference=value - base,
                )
            )
        added = lat[f"{name}_rt"]["p95_ms"] - lat[name]["p95_ms"]
        description = f"realtime {name} adds <= {limit} ms at p95"
        targets.append(Target(f"{stem}.{name}_adds", file, description, added, limit, True, "ms"))
    return size, figures, targets


def queryable_latency(stem: str, file: str, d: dict[str, Any]) -> tuple[str, list[Figure], list[Target]]:
    p = d["parameters"]
    size = (
        f"{p['rate']:,} msgs/s for {p['seconds']:g} s, {p['probes_per_second']} probes/s,"
        f" epoch {p['epoch_seconds']:g} s"
    )
    committed = d["produce_to_committed"]
    paths = {"queryable": "committed snapshot (Iceberg)", "queryable_realtime": "realtime (Iceberg + Kafka tail)"}
    figures = [
        Figure(
            f"{stem}.{name}_{pct}",
            file,
            f"Produce -> returned by the query engine, {label}, vs produce -> committed, {pct}",
            "s",
            d[f"produce_to_{name}"][f"{pct}_s"],
            label,
            committed[f"{pct}_s"],
            "produce -> committed",
            lower_is_better=True,
        )
        for name, label in paths.items()
        for pct in ("p50", "p99")
    ]
    return size, figures, []
