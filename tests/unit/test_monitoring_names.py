"""The dashboard and the alert rules use only metric names the code exports, and the dashboard shows every one.

The names come from the registry after the real flow has run (TestingSource, temp-dir warehouse) and the API has
answered a request and failed one (Litestar creates its metrics on the first request, its error counter on the first
server error).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from litestar.testing import TestClient
from prometheus_client import REGISTRY

import k2.ops.metrics
from api.app import create_app
from k2.ops.config import load_settings
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import raw_batch, trade

MONITORING = Path(k2.ops.metrics.__file__).parent / "monitoring"
METRIC_NAME = re.compile(r"\bk2_[a-z0-9_]+")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names() -> dict[str, str]:
    """Every series name the registry exports (with its family's name), counting families with no samples yet."""
    names: dict[str, str] = {}
    for family in REGISTRY.collect():
        if not family.name.startswith("k2_"):
            continue
        for suffix in SUFFIXES.get(family.type, ("",)):
            names[family.name + suffix] = family.name
        names.update({sample.name: family.name for sample in family.samples if not sample.name.endswith("_created")})
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def rule_exprs() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_dashboard_and_alerts_use_only_exported_metrics(tmp_path):
    settings = load_settings({}, data_dir=str(tmp_path / "k2"), epoch_seconds=0.05, api_keys="k")
    run_ingest(settings, [raw_batch([trade(trade_id="a", source_sequence=1), b"{oops"], "names.trades", 0)])
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/symbols", headers={"X-API-Key": "k"}).status_code == 200
        # Litestar creates its error counter on the first 5xx: a trades file that vanished from storage is one.
        for data_file in (settings.data_path / "warehouse").rglob("*.parquet"):
            if "trades" in data_file.parts:
                data_file.unlink()
        assert client.get("/v1/trades", headers={"X-API-Key": "k"}).status_code == 500
    exported = exported_names()
    assert {"k2_ingest_messages_total", "k2_api_request_duration_seconds_bucket", "k2_api_requests_total"} <= set(
        exported
    )

    used_by_dashboard = {name for expr in dashboard_exprs() for name in METRIC_NAME.findall(expr)}
    used_by_rules = {name for expr in rule_exprs() for name in METRIC_NAME.findall(expr)}
    assert used_by_dashboard and used_by_rules
    assert used_by_dashboard - set(exported) == set(), "the dashboard reads metrics nobody exports"
    assert used_by_rules - set(exported) == set(), "the alert rules read metrics nobody exports"

    # The other way round: every family K2 defines (flow and API) has a panel.
    shown = {exported[name] for name in used_by_dashboard}
    assert set(exported.values()) - shown == set(), "metrics without a panel"
