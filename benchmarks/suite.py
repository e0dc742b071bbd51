"""Every benchmark, then the report: `make bench` (full size, into benchmarks/reports/ and benchmarks/report.md) and
`make bench-ci` (tiny sizes, into reports/bench-ci/, which proves the pipeline runs and leaves the committed report
alone). One Kafka broker serves every benchmark that needs one (K2_KAFKA_BOOTSTRAP when set, else a private one).

    uv run python benchmarks/suite.py                 # full size: minutes per benchmark on 2 cores
    uv run python benchmarks/suite.py --ci            # tiny sizes, a few minutes
    uv run python benchmarks/suite.py --ci --only ingest,replay
Exits non-zero when a benchmark or the report fails; a regression is flagged in the report, not failed on.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.kafka_ingest import broker  # noqa: E402

HERE = ROOT / "benchmarks"
# name: (script, full-size arguments, CI arguments, the option naming its output file). The report reads the
# output as <name>.json; the names are the files the committed reports already have.
BENCHMARKS: dict[str, tuple[str, list[str], list[str], str]] = {
    "ingest": ("ingest.py", [], ["--messages", "20000", "--rounds", "1"], "--out"),
    "kafka_ingest": (
        "kafka_ingest.py",
        [],
        ["--messages", "20000", "--rate", "2000", "--rate-seconds", "3", "--runs", "1", "--warmup", "0"],
        "--out",
    ),
    "queryable_latency": ("queryable_latency.py", [], ["--rate", "2000", "--seconds", "3"], "--out"),
    "query": ("query.py", [], ["--quick"], "--out"),
    "realtime": ("realtime.py", [], ["--quick"], "--out"),
    "replay": ("replay.py", [], ["--quick"], "--out"),
    "commit-latency": ("commit_latency.py", [], ["--commits", "20", "--every", "10"], "--report"),
    "decoders": ("decoders.py", [], ["--messages", "5000", "--rounds", "1"], "--out"),
    "first_commit": ("first_commit.py", [], ["--messages", "20000", "--restarts", "3"], "--out"),
    "feeds": ("feeds.py", [], ["--quick"], "--out"),
    "formats_flow": ("formats_flow.py", [], ["--messages", "5000"], "--out"),
    # K2 beside the Iceberg Kafka Connect sink and QuestDB (JVMs from Maven jars); outside CI, skipped with the
    # reason in its report when Java or Maven is missing.
    "peers": ("peers_bench.py", [], ["--ci"], "--out"),
}
NEEDS_BROKER = {
    "kafka_ingest",
    "queryable_latency",
    "realtime",
    "replay",
    "first_commit",
    "feeds",
    "formats_flow",
    "peers",
}


def run(name: str, ci: bool, out_dir: Path, env: dict[str, str]) -> bool:
    script, full, quick, out_option = BENCHMARKS[name]
    command = [sys.executable, str(HERE / script), *(quick if ci else full), out_option, str(out_dir / f"{name}.json")]
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    print(f"== {name}: exit {done.returncode} after {time.perf_counter() - started:.1f}s", flush=True)
    return done.returncode == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ci", action="store_true", help="tiny sizes; outputs to reports/bench-ci/")
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="where the JSON reports go")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    out_dir = args.out or (ROOT / "reports" / "bench-ci" if args.ci else HERE / "reports")
    report_dir = out_dir if args.ci or args.out else HERE  # only a full default run rewrites benchmarks/report.md
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.ci:  # a CI run's report must not show an earlier run's output as this one's
        for name in names:
            (out_dir / f"{name}.json").unlink(missing_ok=True)

    started = time.perf_counter()
    failed = []
    with broker() if NEEDS_BROKER & set(names) else contextlib.nullcontext() as bootstrap:
        env = {**os.environ, **({"K2_KAFKA_BOOTSTRAP": bootstrap} if bootstrap else {})}
        for name in names:
            if not run(name, args.ci, out_dir, env):
                failed.append(name)
    report = [sys.executable, str(HERE / "report.py"), "--from", str(out_dir), "--out-dir", str(report_dir)]
    report += ["--expect", ",".join(BENCHMARKS[n][0].removesuffix(".py") for n in names)]  # script = benchmark key
    print(f"== report: {' '.join(report[1:])}", flush=True)
    reported = subprocess.run(report, cwd=ROOT, check=False).returncode == 0
    print(f"== all done in {time.perf_counter() - started:.0f}s; failed: {', '.join(failed) or 'none'}", flush=True)
    return 0 if reported and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
