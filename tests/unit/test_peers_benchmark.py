"""The peers benchmark's own logic without its JVMs: the table check (duplicates, lost keys, exact sums) on real
DuckDB over Arrow, the derived quotes and QuestDB's staging of exact decimals, and the report's "K2 beside its
peers" section and chart built from a peers report shaped as benchmarks/peers_bench.py writes it."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from benchmarks import report as report_cli
from benchmarks.peers.query_data import SPREAD, for_questdb, quotes_of
from benchmarks.peers.tables import Expected, check, valid_messages
from benchmarks.query_data import Generator, local_us, trading_days

pytestmark = pytest.mark.unit
MONEY = pa.decimal128(18, 8)


def rows_of(values: list[bytes]) -> pa.Table:
    trades = [json.loads(v) for v in values]
    columns = {name: [t[name] for t in trades] for name in ("exchange", "symbol", "trade_id")}
    money = {name: pa.array([Decimal(t[name]) for t in trades], MONEY) for name in ("price", "quantity")}
    return pa.table({**columns, **money})


def test_check_counts_duplicates_lost_rows_and_compares_exact_sums() -> None:
    values = [value for _, value in valid_messages(50)]
    expected = Expected.of(values)
    assert len(expected.keys) == 50  # the valid feed: one distinct natural key per message

    exact = check(rows_of(values), expected)
    assert (exact["rows"], exact["duplicates"], exact["lost"], exact["unexpected"]) == (50, 0, 0, 0)
    assert exact["sums_match"] and Decimal(exact["price_sum"]) == expected.price_sum

    faulty = check(rows_of([*values[1:], values[5], values[5]]), expected)  # one lost, one twice more
    assert (faulty["rows"], faulty["distinct_keys"], faulty["duplicates"], faulty["lost"]) == (51, 49, 2, 1)
    assert not faulty["sums_match"]


def test_derived_quotes_precede_their_trades_within_the_tolerance_and_stage_exactly_for_questdb() -> None:
    day = trading_days(1)[0]
    trades = Generator(20, seed=3).chunk(local_us(day, 9, 30), 3_600_000_000, 2_000)
    quotes = quotes_of(trades)
    assert quotes.num_rows == trades.num_rows
    by_id = {q["quote_id"]: q for q in quotes.to_pylist()}
    for trade in trades.slice(0, 300).to_pylist():
        quote = by_id[f"Q-{trade['trade_id']}"]
        gap = trade["timestamp"] - quote["timestamp"]
        assert 0 < gap.total_seconds() <= 0.9  # inside the as-of join's 1 s tolerance
        assert quote["bid_price"] == trade["price"] and quote["ask_price"] - quote["bid_price"] == SPREAD

    staged = for_questdb(trades, "trades")
    assert staged.column_names[0] == "ts" and staged["price"].type == pa.string()
    assert staged["ts"].to_pylist() == sorted(staged["ts"].to_pylist())  # time-ordered, as QuestDB appends best
    assert sorted(map(Decimal, staged["price"].to_pylist())) == sorted(trades["price"].to_pylist())  # exact text


def peers_report(k2_rate: float, sink_rate: float, engine_ms: float, questdb_ms: float) -> dict[str, Any]:
    timing = {"p50_ms": engine_ms, "p95_ms": engine_ms * 2, "mean_ms": engine_ms, "max_ms": engine_ms * 3, "n": 10}
    peer = {"p50_ms": questdb_ms, "p95_ms": questdb_ms * 2, "mean_ms": questdb_ms, "max_ms": questdb_ms, "n": 10}
    table = {"rows": 100, "duplicates": 0, "lost": 0, "sums_match": True}
    crash = {"sent": 100, "kills": [{"kill": 1}], "rows": 100, "duplicates": 0, "lost": 0, "sums_match": True}
    answers = {"rows": [5, 5], "only_k2": 0, "only_peer": 0, "same_answers": True, "api_count_matches": True}
    return {
        "benchmark": "peers_bench",
        "recorded": {"generated_at": "2026-12-04T22:00:00+00:00", "commit": "abc", "python": "3.11", "cpus": 2},
        "ci": True,
        "parameters": {"messages": 100, "kills": 1, "crash_rate": 1000, "rows": 1000, "queries": 10},
        "ingest": {
            "messages": 100,
            "expected": {"rows": 100, "price_sum": "10.5", "quantity_sum": "3"},
            "k2": {"msgs_per_s": k2_rate, "peak_rss_bytes": 200e6, "table": table},
            "sink_1s": {"msgs_per_s": sink_rate, "peak_rss_bytes": 800e6, "table": table},
            "sink_default": {"skipped": "CI size"},
            "latency": {"k2": {"rate": 2000, "p50_s": 0.5, "p99_s": 1.0}, "sink_1s": {"p50_s": 1.0, "p99_s": 4.0}},
        },
        "crash": {"k2": crash, "sink_1s": crash},
        "queries": {
            "table": {"rows": 1000, "size_bytes": 5e6},
            "questdb": {"load_seconds": 1.0, "size_bytes": 9e6, "startup_s": 2.0, "peak_rss_bytes": 4e8},
            "timings": {"point": {"engine": timing, "api": timing, "questdb": peer}},
            "answers": {"point": answers},
        },
        "load_average_1_5_15m": {"start": [1.0, 1.0, 1.0]},
    }


def build(tmp_path: Path, data: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    run = tmp_path / "run"
    run.mkdir()
    (run / "peers.json").write_text(json.dumps(data))
    out = tmp_path / "out"
    code = report_cli.main(["--from", str(run), "--out-dir", str(out), "--previous", "none", "--expect", "peers_bench"])
    return code, json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def test_each_k2_figure_is_a_ratio_to_the_peer_and_the_section_says_where_k2_loses(tmp_path: Path) -> None:
    code, report, markdown = build(tmp_path, peers_report(3000.0, 1000.0, engine_ms=12.0, questdb_ms=6.0))

    assert code == 0
    figures = {f["id"]: f for f in report["figures"]}
    assert figures["peers.ingest_vs_sink_1s"]["ratio"] == pytest.approx(3.0)
    assert figures["peers.latency_p99_vs_sink"]["ratio"] == pytest.approx(0.25)
    assert figures["peers.point_p50_engine_vs_questdb"]["ratio"] == pytest.approx(2.0)
    assert "peers.ingest_vs_sink_default" not in figures  # the 5-minute run was skipped at CI size
    met = {t["id"]: t["met"] for t in report["targets"]}
    assert met == {"peers.crash_k2_exact": True, "peers.crash_sink_1s_exact": True}

    section = markdown[markdown.index("## K2 beside its peers") : markdown.index("## Charts")]
    assert "| 3,000 msgs/s (K2 flow) | 1,000 msgs/s (Iceberg sink (1 s commits)) | 3 (K2 better) |" in section
    assert "point: 1 symbol, 1 minute, p50 | 12.0 ms (K2 engine) | 6.0 ms (QuestDB /exec) | 2 (**K2 worse**)" in section
    assert "**Where K2 loses in this run:** point: 1 symbol, 1 minute, p50 vs QuestDB /exec (2x)" in section
    assert "![peers](charts/peers.png)" in section
    assert (tmp_path / "out" / "charts" / "peers.png").read_bytes().startswith(b"\x89PNG")
    assert "### peers.json" not in markdown  # its figures are in the section, not among K2's own baselines


def test_a_skipped_peers_run_says_why(tmp_path: Path) -> None:
    skipped = {"benchmark": "peers_bench", "skipped": "Java (17+) is not on PATH", "parameters": {}}
    code, report, markdown = build(tmp_path, skipped)
    assert code == 0 and report["figures"] == []
    assert "Skipped: Java (17+) is not on PATH." in markdown
