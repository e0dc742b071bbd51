"""What the layout promises (README, "Layout"): the stream engine stays at the edge and files stay small."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400


def k2_modules(exclude: str) -> list[str]:
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (ROOT / "k2").rglob("*.py")
        if not path.relative_to(ROOT).as_posix().startswith(exclude)
    )


def test_no_module_outside_k2_flow_needs_bytewax_api_or_flows():
    modules = k2_modules(exclude="k2/flow/")
    assert "k2.storage.writer" in modules and "k2.ingest.pipeline" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'bytewax', 'api', 'flows'})))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_flow_package_does_import_bytewax():  # the check above can fail: the same probe sees it here
    code = "import sys, k2.flow.iceberg_sink; print('bytewax' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


def test_source_files_stay_small():
    folders = ("k2", "api", "flows", "scripts", "benchmarks")
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
        for folder in folders
        for path in (ROOT / folder).rglob("*.py")
    }
    assert len(sizes) > 50
    assert {path: lines for path, lines in sizes.items() if lines > MAX_LINES} == {}
