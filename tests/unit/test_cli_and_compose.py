import io
from pathlib import Path

import yaml
from bytewax.testing import run_main

from flows.ingest import build_flow
from k2.flow.sources import SyntheticSource
from k2.loaders.synthetic import FeedConfig
from k2.ops.cli import main, summary
from k2.ops.config import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]


def test_summary_reports_what_landed(settings):
    run_main(
        build_flow(SyntheticSource(FeedConfig(messages=2_000, symbols=4, invalid_rate=0.01, gap_rate=0.02)), settings)
    )
    out = io.StringIO()
    counts = summary(settings, out)
    text = out.getvalue()
    assert counts["trades"] > 0 and counts["dead_letters"] > 0
    assert f"market_data.trades: {counts['trades']:,} rows" in text
    assert "duplicates dropped" in text and "sequence numbers missing" in text


def test_cli_rejects_bad_configuration(monkeypatch, capsys):
    monkeypatch.setenv("K2_BATCH_SIZE", "lots")
    assert main(["summary"]) == 2
    assert "K2_BATCH_SIZE" in capsys.readouterr().err


def test_compose_only_sets_variables_the_code_reads():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    known = {env_name(field) for field in Settings.__struct_fields__}
    used = {name for service in compose["services"].values() for name in (service.get("environment") or {})}
    k2_vars = {name for name in used if name.startswith("K2_")}
    assert k2_vars and k2_vars <= known, k2_vars - known
    assert {"kafka", "minio", "catalog-db", "ingest", "api"} <= set(compose["services"])
    assert compose["services"]["api"]["command"] == ["python", "-m", "api"]
