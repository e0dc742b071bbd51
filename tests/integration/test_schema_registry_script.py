"""scripts/schema_registry.py as the README uses it: `start` prints the URL of a registry that answers, `env` says
it, a stop and a start on the same data keep the schema ids, and `stop` leaves none running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from scripts.schema_registry import answers
from tests.fixtures.requirements import require
from tests.fixtures.schema_registry import HINT, unavailable_reason

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "scripts.schema_registry", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_start_env_restart_and_stop(tmp_path):
    require("a schema registry", unavailable_reason(), hint=HINT)
    env = {**os.environ, "K2_SCHEMA_REGISTRY_STATE_DIR": str(tmp_path / "state")}
    started = script(env, "start")
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert answers(url)
        assert script(env, "env", "--export").stdout.strip() == f"export K2_SCHEMA_REGISTRY_URL={url}"
        schema_id = SchemaRegistryClient({"url": url}).register_schema("a-value", Schema('{"type": "string"}', "AVRO"))

        assert script(env, "stop").returncode == 0 and not answers(url)
        again = script(env, "start")
        url = again.stdout.strip().splitlines()[-1]
        found = SchemaRegistryClient({"url": url}).get_schema(schema_id)
        assert found.schema_str == '{"type": "string"}'  # the same id, after a restart on the same data
    finally:
        script(env, "stop")
    assert script(env, "status").returncode == 1 and not answers(url)
