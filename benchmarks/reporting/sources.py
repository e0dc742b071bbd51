"""Reads the benchmark JSON reports of one run directory and says which run each came from."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.reporting.figures import READERS, generic
from benchmarks.reporting.model import Figure, Source, Target

ROOT = Path(__file__).resolve().parents[2]
SKIPPED = {"report.json"}  # the report's own output, when a run directory is also the output directory


class BrokenRun(Exception):
    """A run directory the report cannot be built from: the benchmark pipeline is broken."""


def git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def recorded(path: Path, data: dict[str, Any]) -> tuple[str, str, str | None, str]:
    """(when, how we know, commit measured, the recording commit's subject): the file's own record first; else, for
    a file committed unchanged, the commit that recorded it (the run happened just before it); else the file's
    modification time. The subject often says how loaded the machine was."""
    own = data.get("recorded") or {}
    when = own.get("generated_at") or data.get("generated_at")
    commit = own.get("commit") or (data.get("code") or {}).get("commit")
    tracked = git("ls-files", "--error-unmatch", str(path), cwd=path.parent)
    unchanged = bool(tracked) and not git("status", "--porcelain", "--", str(path), cwd=path.parent)
    sha, at, subject = "", "", ""
    if unchanged:
        sha, at, subject = git("log", "-1", "--format=%h%n%cI%n%s", "--", str(path), cwd=path.parent).split("\n", 2)
    if when:
        return when, "in the file", commit, subject
    if unchanged:
        return at, f"committed in {sha}", commit, subject
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    return mtime, "file time", commit, subject


def machine_of(data: dict[str, Any]) -> dict[str, object]:
    """What the run itself wrote down about its machine (the files differ in what they record)."""
    machine = dict(data.get("machine") or {})
    for key in ("python", "cpus", "load_average_1_5_15m"):
        if key in (data.get("recorded") or {}):
            machine.setdefault(key, data["recorded"][key])
    return machine


def read_run(directory: Path) -> tuple[list[Source], list[Figure], list[Target]]:
    """Every benchmark JSON in `directory` (sorted by name), read into figures and targets."""
    files = sorted(p for p in directory.resolve().glob("*.json") if p.name not in SKIPPED)
    if not files:
        raise BrokenRun(f"no benchmark reports (*.json) in {directory}")
    sources, figures, targets = [], [], []
    for path in files:
        try:
            data = json.loads(path.read_text())
            benchmark = data.get("benchmark") or path.stem
            size, found, goals = READERS.get(benchmark, generic)(path.stem, path.name, data)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BrokenRun(f"{path}: cannot read {type(exc).__name__}: {exc}") from exc
        when, how, commit, subject = recorded(path, data)
        sources.append(Source(path.name, benchmark, when, how, commit, size, machine_of(data), subject))
        figures += found
        targets += goals
    return sources, figures, targets
