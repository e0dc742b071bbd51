"""The benchmark report builder (benchmarks/report.py) on small benchmark reports shaped as the benchmarks write
them, plus the committed query/realtime/Kafka reports as they are: ratios against the same-run baseline, targets,
charts, regression flags beyond the noise band, a broken run failing loudly, and the hand-written design
measurements that end every report (and that code comments point to)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report as report_cli
from benchmarks.reporting.markdown import DESIGN_MEASUREMENTS
from benchmarks.reporting.regression import NOISE_BAND

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
COMMITTED_REPORTS = ROOT / "benchmarks" / "reports"
PNG = b"\x89PNG\r\n\x1a\n"


def ingest_report(plain: float, flow: float, ratio: float, messages: int = 20_001) -> dict[str, Any]:
    """What benchmarks/ingest.py writes (the ratio is the median of per-round flow/plain ratios)."""
    return {
        "benchmark": "ingest",
        "recorded": {"generated_at": "2026-11-26T10:00:00+00:00", "commit": "abc123", "python": "3.11.7", "cpus": 2},
        "messages": messages,
        "batch_size": 5000,
        "epoch_seconds": 1.0,
        "workers": 1,
        "rounds": 1,
        "plain_msgs_per_s": plain,
        "flow_msgs_per_s": flow,
        "ratio": ratio,
        "landed": {"trades": 9980, "quotes": 9950, "dead_letters": 20, "sequence_gaps": 31},
        "injected": {"invalid": 20, "duplicates": 40, "gaps": 10, "reordered": 20},
        "machine": {"python": "3.11.7", "cpus": 2, "platform": "Linux"},
    }


def replay_report(raw: list[float], replay: list[float]) -> dict[str, Any]:
    """What benchmarks/replay.py writes: best of the rounds, and every round."""
    return {
        "benchmark": "replay",
        "rows": 20_000,
        "rounds": len(raw),
        "data_files": 2,
        "chunk_rows": 50_000,
        "fill_seconds": 1.2,
        "raw_produce_rows_per_s": max(raw),
        "replay_rows_per_s": max(replay),
        "ratio": max(replay) / max(raw),
        "read_encode_rows_per_s": 150_000.0,
        "all_rounds": {"raw_produce": raw, "replay": replay, "read_encode": [150_000.0] * len(raw)},
        "machine": {"python": "3.11.7", "cpus": 2, "platform": "Linux"},
    }


def queryable_report(committed_p99: float, queryable_p99: float, realtime_p99: float) -> dict[str, Any]:
    """What benchmarks/queryable_latency.py writes (latencies in seconds)."""

    def latency(p99: float) -> dict[str, float]:
        return {"n": 150, "p50_s": p99 / 2, "p95_s": p99 * 0.9, "p99_s": p99, "max_s": p99 * 1.1}

    return {
        "benchmark": "queryable_latency",
        "parameters": {"rate": 2000, "seconds": 3.0, "probes_per_second": 50, "epoch_seconds": 1.0},
        "messages": 6000,
        "probes": 150,
        "produce_to_committed": latency(committed_p99),
        "produce_to_queryable": latency(queryable_p99),
        "produce_to_queryable_realtime": latency(realtime_p99),
    }


def commit_latency_report(plain_last_p95: float, maintained_last_p95: float) -> dict[str, Any]:
    """What benchmarks/commit_latency.py writes (milliseconds)."""

    def side(last_p95: float) -> dict[str, Any]:
        return {"first_10pct_ms": {"p50": 150.0, "p95": 300.0}, "last_10pct_ms": {"p50": last_p95 / 2, "p95": last_p95}}

    return {
        "benchmark": "commit_latency",
        "parameters": {"commits": 40, "maintenance_every": 10, "trades_per_commit": 200, "retain_last": 5},
        "without_maintenance": side(plain_last_p95),
        "with_maintenance": side(maintained_last_p95),
    }


def first_commit_report(commits: list[float], reads: list[float], imports: list[float], moved: list[bool],
                        recoveries: list[float | None]) -> dict[str, Any]:  # fmt: skip
    """What benchmarks/first_commit.py writes (seconds from process start), for a clean run and the restarts."""

    def summary(values: list[float | None]) -> dict[str, float] | None:
        present = sorted(v for v in values if v is not None)
        return {"n": len(present), "p50_s": present[(len(present) - 1) // 2], "p95_s": present[-1],
                "max_s": present[-1]} if present else None  # fmt: skip

    restarts = [
        {"start_to_first_commit_s": c, "start_to_first_read_s": r, "import_flows_ingest_s": i, "moved": m}
        for c, r, i, m in zip(commits, reads, imports, moved, strict=True)
    ]
    clean = {"start_to_first_commit_s": 6.0, "start_to_first_read_s": 5.0, "import_flows_ingest_s": 2.0}
    return {
        "benchmark": "first_commit",
        "parameters": {
            "messages": 20_000,
            "restarts": len(commits),
            "partitions": 4,
            "epoch_seconds": 1.0,
            "snapshot_seconds": 1,
        },
        "restarts": {
            "start_to_first_commit": summary(commits),
            "start_to_first_read": summary(reads),
            "first_read_to_first_commit": summary([c - r for c, r in zip(commits, reads, strict=True)]),
            "start_to_first_plain_commit": summary(commits),
            "start_to_first_recovery_commit": summary(recoveries),
            "position_moved_share": sum(moved) / len(moved),
        },
        "clean": clean,
        "baselines": {"python_start": summary([0.02] * len(commits)), "import_flows_ingest": summary(imports)},
        "target": {"start_to_first_commit_p95_s_max": 3.0},
        "runs": [clean, *restarts],
    }


def write_run(directory: Path, reports: dict[str, dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in reports.items():
        (directory / f"{name}.json").write_text(json.dumps(data))
    return directory


def build(run: Path, out: Path, previous: str = "none", *extra: str) -> tuple[int, dict[str, Any]]:
    code = report_cli.main(["--from", str(run), "--out-dir", str(out), "--previous", previous, *extra])
    written = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
    return code, written


def previous_of(run: Path, path: Path | None = None) -> dict[str, Any]:
    """The report.json a run would write, without charts (drawing is the slow part): the previous report."""
    data = {**report_cli.assemble(run, None).data, "origin": "test"}
    if path is not None:
        path.write_text(json.dumps(data))
    return data


def figures_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in report["figures"]}


def test_figures_ratios_targets_and_charts_with_no_previous_report(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "run",
        {
            "ingest": ingest_report(200_000, 110_000, 0.52),
            "replay": replay_report([100_000.0], [70_000.0]),
            "queryable_latency": queryable_report(2.0, 2.5, 0.5),
            "commit-latency": commit_latency_report(2000.0, 500.0),
        },
    )
    for name in ("query", "realtime", "kafka_ingest"):  # the committed runs, as the benchmarks wrote them
        shutil.copy(COMMITTED_REPORTS / f"{name}.json", run / f"{name}.json")

    code, report = build(run, tmp_path / "out")

    assert code == 0
    figures = figures_of(report)
    # The ingest ratio is the benchmark's paired one (median per round), not a ratio of the two medians.
    assert figures["ingest.flow_vs_plain"]["ratio"] == pytest.approx(0.52)
    assert figures["replay.replay_vs_raw_produce"]["ratio"] == pytest.approx(0.7)
    query = json.loads((COMMITTED_REPORTS / "query.json").read_text())["measurements"]["point"]
    point = figures["query.point_engine_p95"]
    assert point["ratio"] == pytest.approx(query["engine"]["p95_ms"] / query["duckdb_floor"]["p95_ms"])
    realtime = figures["realtime.trades_p95"]
    assert realtime["difference"] == pytest.approx(realtime["value"] - realtime["baseline"])
    assert figures["queryable_latency.queryable_p99"]["ratio"] == pytest.approx(1.25)
    assert figures["queryable_latency.queryable_realtime_p99"]["ratio"] == pytest.approx(0.25)
    assert figures["commit-latency.maintained_vs_plain_last_p95"]["ratio"] == pytest.approx(0.25)
    rss = figures["kafka_ingest.flow_peak_rss"]
    assert rss["baseline"] is None and rss["compared"] == rss["value"] > 0  # no same-run baseline: the value

    targets = {t["id"]: t for t in report["targets"]}
    assert not targets["ingest.flow_rate"]["met"]  # 110,000 < 150,000 msgs/s
    assert targets["ingest.flow_ratio"]["met"]  # 0.52 >= 0.5
    assert {s["file"]: s["recorded_at"] for s in report["sources"]}["ingest.json"] == "2026-11-26T10:00:00+00:00"

    assert report["comparison"] is None
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "No previous report: nothing was compared." in markdown
    assert "| flow >= 0.5x plain loop | 0.52 x | yes | ingest.json |" in markdown
    charts = sorted((tmp_path / "out" / "charts").glob("*.png"))
    assert {p.stem for p in charts} >= {
        "ratios",
        "throughput_ingest",
        "throughput_replay",
        "latency_ms",
        "latency_produce",
        "memory",
    }
    assert all(p.read_bytes().startswith(PNG) for p in charts)
    assert all(f"](charts/{p.name})" in markdown for p in charts)
    # The hand-written design measurements close the report, after the regression check, exactly as written.
    assert markdown.rstrip().endswith(DESIGN_MEASUREMENTS.read_text().strip())
    assert markdown.index("## Regression check") < markdown.index("\n## Design measurements\n")


def test_change_beyond_the_band_is_flagged_and_printed_but_does_not_fail(tmp_path: Path, capsys) -> None:
    before = write_run(
        tmp_path / "before",
        {"ingest": ingest_report(200_000, 100_000, 0.50), "replay": replay_report([100_000.0], [70_000.0])},
    )
    previous = previous_of(before, tmp_path / "previous.json")
    assert figures_of(previous)["ingest.flow_vs_plain"]["compared"] == 0.50
    # Ingest: ratio 0.50 -> 0.35, -30% (beyond the band) though both absolute rates rose; replay: -4% (within).
    after = write_run(
        tmp_path / "after",
        {"ingest": ingest_report(400_000, 140_000, 0.35), "replay": replay_report([100_000.0], [67_200.0])},
    )
    capsys.readouterr()

    code, report = build(after, tmp_path / "out", str(tmp_path / "previous.json"))

    assert code == 0
    results = {c["id"]: c for c in report["comparison"]["results"]}
    assert results["ingest.flow_vs_plain"]["status"] == "regressed"
    assert results["ingest.flow_vs_plain"]["change"] == pytest.approx(0.35 / 0.50 - 1)
    assert results["replay.replay_vs_raw_produce"]["status"] == "unchanged"
    assert results["replay.read_encode_vs_raw_produce"]["status"] == "unchanged"
    assert "REGRESSED: ingest.flow_vs_plain" in capsys.readouterr().out
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert f"Noise band: ±{NOISE_BAND:.0%}" in markdown
    assert "**regressed -30.0%" in markdown


def test_improvement_spread_and_size_change(tmp_path: Path) -> None:
    before = write_run(
        tmp_path / "before",
        {
            "ingest": ingest_report(200_000, 100_000, 0.50),
            "replay": replay_report([100_000.0, 100_000.0], [60_000.0, 80_000.0]),
        },
    )
    previous = previous_of(before)
    after = write_run(
        tmp_path / "after",
        {
            "ingest": ingest_report(200_000, 100_000, 0.65, messages=1_000_001),  # another size: not compared
            # Per-round ratios 0.75 and 1.0: this run's own spread (1/7) widens the band to 2/7; +25% stays inside.
            "replay": replay_report([100_000.0, 100_000.0], [75_000.0, 100_000.0]),
        },
    )
    results = {c["id"]: c for c in report_cli.assemble(after, previous).data["comparison"]["results"]}
    assert results["ingest.flow_vs_plain"]["status"] == "not comparable"
    assert "1,000,001 messages" in results["ingest.flow_vs_plain"]["reason"]
    replay = results["replay.replay_vs_raw_produce"]
    assert replay["band"] == pytest.approx(2 / 7)
    assert replay["change"] == pytest.approx(0.25) and replay["status"] == "unchanged"

    faster = write_run(tmp_path / "faster", {"replay": replay_report([100_000.0], [100_000.0])})
    statuses = {c.id: c.status for c in report_cli.assemble(faster, previous).comparisons}
    assert statuses["replay.replay_vs_raw_produce"] == "not comparable"  # 1 round then 2: another size
    assert statuses["replay.read_encode_vs_raw_produce"] == "not comparable"


def test_broken_runs_exit_non_zero(tmp_path: Path) -> None:
    assert build(tmp_path / "missing", tmp_path / "out")[0] == 2
    assert build(write_run(tmp_path / "empty", {}), tmp_path / "out")[0] == 2
    shape_changed = ingest_report(200_000, 100_000, 0.5)
    del shape_changed["plain_msgs_per_s"]
    assert build(write_run(tmp_path / "bad", {"ingest": shape_changed}), tmp_path / "out")[0] == 2

    good = write_run(tmp_path / "good", {"ingest": ingest_report(200_000, 100_000, 0.5)})
    assert build(good, tmp_path / "out", "none", "--expect", "ingest")[0] == 0
    assert build(good, tmp_path / "out", "none", "--expect", "ingest,replay")[0] == 2  # replay did not report


def test_first_commit_figures_targets_and_its_own_chart(tmp_path: Path) -> None:
    """Restart -> first commit against the same run's import of flows.ingest; the target on the restarts' p95."""
    run = write_run(
        tmp_path / "run",
        {
            "first_commit": first_commit_report(
                [2.0, 2.5, 3.5], [1.5, 1.8, 2.6], [1.0, 1.2, 1.4], [True, True, False], [None, None, None]
            )
        },
    )

    code, report = build(run, tmp_path / "out")

    assert code == 0
    figures = figures_of(report)
    assert figures["first_commit.first_commit_p50"]["ratio"] == pytest.approx(2.5 / 1.2)
    assert figures["first_commit.first_commit_p95"]["value"] == 3.5
    assert figures["first_commit.read_to_commit_p50"]["ratio"] == pytest.approx(0.7)  # vs a 1 s commit interval
    assert figures["first_commit.clean_first_commit"]["ratio"] == pytest.approx(3.0)
    assert figures["first_commit.import_vs_python_p50"]["ratio"] == pytest.approx(1.2 / 0.02)
    assert figures["first_commit.position_moved"]["value"] == pytest.approx(200 / 3)
    assert "first_commit.first_recovery_commit_p50" not in figures  # no restart committed a recovery state
    targets = {t["id"]: t for t in report["targets"]}
    assert not targets["first_commit.first_commit_p95"]["met"]  # 3.5 s > 3 s
    assert not targets["first_commit.position_moved"]["met"]  # 2 of 3 < 90%
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "| process start -> first commit <= 3 s (restarts, p95) | 3.50 s | **no** | first_commit.json |" in markdown
    assert "### first_commit.json" in markdown
    assert {p.stem for p in (tmp_path / "out" / "charts").glob("*.png")} == {"ratios", "restart_first_commit"}

    fast = first_commit_report([1.5, 2.0], [1.0, 1.2], [0.9, 1.0], [True, True], [1.4, None])
    code, report = build(write_run(tmp_path / "fast", {"first_commit": fast}), tmp_path / "out")
    assert code == 0 and all(t["met"] for t in report["targets"])
    assert figures_of(report)["first_commit.first_recovery_commit_p50"]["value"] == 1.4


def test_every_design_measurement_a_comment_cites_is_in_the_report() -> None:
    """Comments in k2/ and flows/ cite `benchmarks/report.md, "Design measurements: <heading>"` for their figures:
    each cited heading is a section of design_measurements.md, each section is cited, and the committed report.md
    carries the section as it is now (regenerate it with benchmarks/report.py after editing the file)."""
    headings = [
        line.removeprefix("### ") for line in DESIGN_MEASUREMENTS.read_text().splitlines() if line.startswith("### ")
    ]
    cited = {
        (path.relative_to(ROOT).as_posix(), heading)
        for folder in ("k2", "flows")
        for path in (ROOT / folder).rglob("*.py")
        for heading in re.findall(r'"Design measurements: ([^"]+)"', path.read_text())
    }
    assert len(headings) == len(set(headings)) >= 20
    assert sorted((path, h) for path, h in cited if h not in headings) == []
    assert sorted(set(headings) - {h for _, h in cited}) == []
    committed = (ROOT / "benchmarks" / "report.md").read_text()
    assert committed.rstrip().endswith(DESIGN_MEASUREMENTS.read_text().strip())
