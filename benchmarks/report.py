"""The benchmark report: reads the JSON reports of one run directory and writes `report.md`, `report.json` (every
figure, ratio and target, machine-readable) and PNG charts under `charts/`. report.md ends with the hand-written
`benchmarks/reporting/design_measurements.md` (the figures behind design choices that code comments point to).

Each figure is shown beside its same-run baseline with the ratio, each issue target with whether it was met, and
each ratio is compared with the previous report (the committed `benchmarks/report.json`, else the one about to be
overwritten): changes beyond the noise band are flagged and printed. The exit status is non-zero only when the
pipeline is broken (no reports, an unreadable one, an expected benchmark missing), never for a regression.

    uv run python benchmarks/report.py --from benchmarks/reports            # -> benchmarks/report.md (committed)
    uv run python benchmarks/report.py --from reports/bench-ci --out-dir reports/bench-ci --expect ingest,query
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from benchmarks.reporting import charts, machine, markdown  # noqa: E402
from benchmarks.reporting.model import Comparison, Figure, Source, Target  # noqa: E402
from benchmarks.reporting.peer_figures import PEERS_FILE  # noqa: E402
from benchmarks.reporting.regression import BAND_REASON, NOISE_BAND, compare  # noqa: E402
from benchmarks.reporting.sources import BrokenRun, git, read_run  # noqa: E402

COMMITTED = "benchmarks/report.json"


def previous_report(choice: str, out_json: Path) -> dict[str, Any] | None:
    """The report to compare with: `auto` = the committed one, else the file about to be overwritten."""
    if choice == "none":
        return None
    if choice != "auto":
        return {**json.loads(Path(choice).read_text()), "origin": choice}
    committed = git("show", f"HEAD:{COMMITTED}")
    if committed:
        return {**json.loads(committed), "origin": f"{COMMITTED} at HEAD"}
    if out_json.exists():
        return {**json.loads(out_json.read_text()), "origin": f"{out_json} (before this run overwrote it)"}
    return None


def figure_record(figure: Figure) -> dict[str, Any]:
    return msgspec.to_builtins(figure) | {"ratio": figure.ratio, "compared": figure.compared}


class Assembled(msgspec.Struct):
    """A report before it is written: `data` is what report.json holds (charts are added when they are drawn)."""

    data: dict[str, Any]
    sources: list[Source]
    figures: list[Figure]
    targets: list[Target]
    comparisons: list[Comparison]


def assemble(run_dir: Path, previous: dict[str, Any] | None) -> Assembled:
    """Every figure, target and comparison of a run, without writing anything."""
    sources, figures, targets = read_run(run_dir)
    comparisons = compare(figures, sources, previous)
    dirty = git("status", "--porcelain", "--", "benchmarks")  # the report's own code; runs record theirs
    data: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if dirty else ""),
        "from": _shown(run_dir),
        "machine": machine.describe(),
        "noise_band": {"relative": NOISE_BAND, "why": BAND_REASON},
        "sources": [msgspec.to_builtins(s) for s in sources],
        "figures": [figure_record(f) for f in figures],
        "targets": [msgspec.to_builtins(t) | {"met": t.met} for t in targets],
        "comparison": None
        if previous is None
        else {
            "origin": previous["origin"],
            "generated_at": previous.get("generated_at"),
            "results": [msgspec.to_builtins(c) for c in comparisons],
        },
    }
    return Assembled(data, sources, figures, targets, comparisons)


def build(run_dir: Path, out_dir: Path, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Assemble the report of `run_dir`, draw its charts and write report.json and report.md into `out_dir`."""
    report = assemble(run_dir, previous)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = charts.draw(report.figures, out_dir / "charts")
    report.data["charts"] = {name: _shown(path, out_dir) for name, path in drawn.items()}
    (out_dir / "report.json").write_text(json.dumps(report.data, indent=2) + "\n")
    peers_json = run_dir / PEERS_FILE
    peers = json.loads(peers_json.read_text()) if peers_json.exists() else None
    text = markdown.render(
        report.data, report.sources, report.figures, report.targets, report.comparisons, drawn, out_dir, peers
    )
    (out_dir / "report.md").write_text(text)
    return report.data


def _shown(path: Path, base: Path = ROOT) -> str:
    path = path.resolve()
    return path.relative_to(base.resolve()).as_posix() if path.is_relative_to(base.resolve()) else str(path)


def summary(report: dict[str, Any]) -> list[str]:
    """What is printed: the targets not met and every flagged change."""
    lines = [f"target not met: {t['description']} (measured {t['value']:.4g} {t['unit']}, {t['source']})"
             for t in report["targets"] if not t["met"]]  # fmt: skip
    comparison = report["comparison"]
    if comparison is None:
        return [*lines, "no previous report: nothing compared"]
    for c in comparison["results"]:
        if c["status"] in markdown.FLAGGED:
            lines.append(f"{c['status'].upper()}: {c['id']} {c['previous']:.4g} -> {c['current']:.4g} "
                         f"({c['change']:+.1%}, band ±{c['band']:.0%})")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="run_dir", type=Path, default=ROOT / "benchmarks" / "reports")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--previous", default="auto", help="auto (committed, else the one overwritten), none, a path")
    parser.add_argument("--expect", default="", help="benchmarks that must be in the run, comma-separated")
    args = parser.parse_args(argv)
    try:
        previous = previous_report(args.previous, args.out_dir / "report.json")
        report = build(args.run_dir, args.out_dir, previous)
    except (BrokenRun, OSError, ValueError) as exc:
        print(f"benchmark report: broken pipeline: {exc}", file=sys.stderr)
        return 2
    missing = [b for b in filter(None, args.expect.split(",")) if b not in {s["benchmark"] for s in report["sources"]}]
    for line in summary(report):
        print(line)
    print(f"report: {args.out_dir / 'report.md'} ({len(report['figures'])} figures, {len(report['charts'])} charts)")
    if missing:
        print(f"benchmark report: broken pipeline: no report from {', '.join(missing)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
