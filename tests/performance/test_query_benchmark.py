"""The query benchmark's pipeline runs end to end in quick mode (300k rows, 20 queries): every figure is a
positive number and the methods agree on what they return. Correctness, not timing: nothing here is a target."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "query.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("k2_benchmark_query", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _timings(node, path=""):
    """Every (path, value) of a latency summary or rate in the measurements."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _timings(value, f"{path}.{key}" if path else key)
    elif path.endswith(("_ms", "requests_per_s", "_bytes")):
        yield path, node


def test_quick_benchmark_reports_every_measurement(tmp_path: Path) -> None:
    benchmark = _load_benchmark()
    out = tmp_path / "query.json"
    report = benchmark.main(["--quick", "--data-dir", str(tmp_path / "data"), "--out", str(out)])

    written = json.loads(out.read_text())
    assert written["measurements"] == json.loads(json.dumps(report["measurements"]))
    measurements = written["measurements"]
    for query, methods in (("point", "engine duckdb_floor pyiceberg"), ("bars", "engine duckdb_floor pyiceberg")):
        for method in methods.split():
            assert measurements[query][method]["n"] == 20, (query, method)
    assert set(measurements["latest"]) == {"engine_cold", "engine_warm", "duckdb_floor", "pyiceberg"}
    timings = dict(_timings(measurements))
    assert len(timings) > 40
    bad = {path: value for path, value in timings.items() if not (isinstance(value, int | float) and value > 0)}
    assert not bad, bad
    assert all(math.isfinite(v) and v > 0 for v in written["ratios"].values()), written["ratios"]

    # Same questions, same answers: the engine's point queries return the rows raw DuckDB and pyiceberg return.
    correctness = written["correctness"]
    assert correctness["point_rows"]["engine"] == correctness["point_rows"]["duckdb_floor"] > 0
    assert correctness["point_rows_match"] and correctness["bar_rows_match"]
    assert correctness["latest_rows"]["engine_warm"] == correctness["latest_rows"]["duckdb_floor"] == 500
    assert correctness["api_rows_match_engine"]
    api = measurements["api_point"]
    assert api["failures"] == 0 and api["concurrent"]["n"] == 16 * 20

    table = written["table"]
    assert table["rows"] == 300_000 and table["files"] >= 5 and table["size_bytes"] > 0
    assert set(written["targets"]) == {"point_p95_ms", "point_p95_vs_floor", "bars_p95_ms", "api_point_p95_ms"}
    assert written["machine"]["cpu_count"] >= 1
