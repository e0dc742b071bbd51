"""When and on which code a benchmark ran: every benchmark report carries this as `recorded`, so the generated
report can say which run each figure came from (the tree is shared: uncommitted changes to the code under test are
listed, not hidden)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def recorded() -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "HEAD"),
        "uncommitted": git("status", "--short", "k2", "flows", "api").splitlines(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1_5_15m": [round(x, 2) for x in os.getloadavg()],
    }


def save_report(report: dict[str, Any], path: Path) -> None:
    """Write a benchmark's JSON report (the generated report reads these files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
