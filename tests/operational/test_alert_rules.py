"""The alert rules and the Prometheus config pass promtool, and `promtool test rules` fires each alert on the
series it should and not on the others (k2/ops/monitoring/alerts_test.yml)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.requirements import require_executable

MONITORING = Path(__file__).resolve().parents[2] / "k2" / "ops" / "monitoring"


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_executable("promtool", hint="`make system-deps` installs it (Debian package prometheus)")


def run(promtool: str, *args: str) -> str:
    done = subprocess.run([promtool, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_rules_and_the_prometheus_config_are_valid(promtool):
    assert "SUCCESS: 10 rules found" in run(promtool, "check", "rules", "alerts.yml")
    assert "SUCCESS" in run(promtool, "check", "config", "prometheus.yml")


def test_each_alert_fires_on_its_series_and_only_there(promtool):
    assert "SUCCESS" in run(promtool, "test", "rules", "alerts_test.yml")
