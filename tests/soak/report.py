"""The soak's record: the time series and verdicts as JSON (a CI artifact), and a few lines for the log."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from tests.soak.load import QueryRecord
from tests.soak.sampling import percentiles_ms


def query_summary(records: list[QueryRecord]) -> dict[str, dict]:
    """Per route: how many queries, how many failed, latency percentiles of the successful ones."""
    by_route: dict[str, list[QueryRecord]] = defaultdict(list)
    for record in records:
        by_route[record.route].append(record)
    summary = {}
    for route, rows in sorted(by_route.items()):
        ok = [r.seconds for r in rows if r.status == 200]
        p50, p95, p99 = percentiles_ms(ok)
        summary[route] = {
            "count": len(rows),
            "failures": len(rows) - len(ok),
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "max_ms": round(max(ok) * 1_000, 2) if ok else None,
        }
    return summary


def machine() -> dict:
    return {"cpus": os.cpu_count(), "loadavg": list(os.getloadavg())}


def write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, sort_keys=False))


def summary_text(report: dict) -> str:
    rss, api = report["verdicts"]["flow_rss"], report["api_rss"]
    data_lag, committed_lag = report["verdicts"]["data_lag"], report["verdicts"]["committed_lag"]
    run = report["run"]
    lines = [
        f"soak: {run['sent']:,} messages in {run['produce_seconds']:.0f} s ({run['achieved_rate']:,.0f} msg/s), "
        f"drained in {run['drain_seconds']:.1f} s, {len(report['samples'])} samples",
        f"  settings: the product's defaults, overridden: {report['overrides'] or 'nothing'}",
        f"  flow RSS {rss['baseline_kib'] / 1024:.1f} -> {rss['end_kib'] / 1024:.1f} MiB by trend over the "
        f"{rss['judged_seconds']:.0f} s after {report['config']['warmup_seconds']:.0f} s of warm-up "
        f"({rss['samples']} samples): {rss['fitted_growth']:+.2%} by trend, {rss['floor_growth']:+.2%} by floor "
        f"(limit {rss['limit']:.0%}; window medians {rss['window_growth']:+.2%}, swing +-{rss['swing_kib'] / 1024:.1f}"
        f" MiB over {rss['swing_period_s'] or 0:.0f} s, {rss['growth_per_hour']:+.1%}/h) "
        f"{'ok' if rss['ok'] else 'FAIL'}",
        f"  API RSS {api['baseline_kib'] / 1024:.1f} -> {api['end_kib'] / 1024:.1f} MiB after warm-up "
        f"({api['fitted_growth']:+.2%} by trend, {api['floor_growth']:+.2%} by floor; reported)",
        "  flow RSS floor/median by tenth of the run (MiB): "
        + ", ".join(f"{p['from_s']}s {p['floor_mib']:.0f}/{p['median_mib']:.0f}" for p in report["flow_rss_profile"]),
    ]
    for name, lag in (("data lag", data_lag), ("committed lag", committed_lag)):
        lines.append(
            f"  {name} at the end {lag['end_lag']:,.0f} msgs (bound {lag['bound']:,.0f}), trend "
            f"{lag['slope_per_s']:+.1f} msg/s (limit {lag['slope_limit']:.0f}) {'ok' if lag['ok'] else 'FAIL'}"
        )
    for route, q in report["queries"].items():
        lines.append(
            f"  {route:<7} {q['count']:>5} queries, {q['failures']} failed, p50 {q['p50_ms']} ms, "
            f"p95 {q['p95_ms']} ms, p99 {q['p99_ms']} ms"
        )
    exact = report["exactness"]
    lines.append(
        f"  exactness: {exact['rows']:,} rows + {exact['dead_letters']:,} dead letters + "
        f"{exact['duplicates']:,} duplicates = {exact['accounted']:,} of {exact['sent']:,} sent"
    )
    return "\n".join(lines)
