"""The API served by uvicorn in its own process, over real HTTP: answers, auth, and schemathesis's fuzzing of the
served OpenAPI spec with all of its checks, none excluded (no server error, every status, media type and body as
documented, schema-invalid requests refused, schema-valid ones never refused with a 400)."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

from k2.loaders.synthetic import FeedConfig, SyntheticFeed, feed_batches
from tests.fixtures.api import ROOT, api_server
from tests.fixtures.flow import run_ingest

KEY = "integration-key"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from k2.ops.config import load_settings

    settings = load_settings({}, data_dir=str(tmp_path_factory.mktemp("api") / "k2"), epoch_seconds=0.05)
    feed = SyntheticFeed(FeedConfig(messages=4_000, symbols=5, seed=9))
    run_ingest(settings, list(feed_batches(feed, 1_000)))
    with api_server(settings, KEY, K2_API_RATE_LIMIT="0") as base:
        yield base


def test_real_http_answers_and_requires_keys(served):
    with httpx.Client(base_url=served, headers={"X-API-Key": KEY}) as client:
        symbols = client.get("/v1/symbols").json()["data"]
        assert len(symbols) == 5
        first = symbols[0]
        trades = client.get("/v1/trades", params={"symbol": first["symbol"], "limit": 100_000}).json()
        assert trades["meta"]["count"] == first["trades"]
        bars = client.get("/v1/bars", params={"symbol": first["symbol"], "interval": "1s"}).json()
        assert sum(bar["trades"] for bar in bars["data"]) == first["trades"]
        assert client.get("/v1/latest").json()["data"][0]["trade"]
    spec = httpx.get(f"{served}/schema/openapi.json").json()
    data_routes = [path for path in spec["paths"] if path.startswith("/v1/")]
    assert len(data_routes) == 10 and "/v1/replay" in data_routes
    for path in data_routes:
        assert httpx.get(f"{served}{path}").status_code == 401, path
        assert httpx.get(f"{served}{path}", headers={"X-API-Key": "nope"}).status_code == 403, path


@pytest.mark.slow
def test_schemathesis_all_checks_pass_on_the_served_spec(served, tmp_path):
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{served}/schema/openapi.json", "--checks", "all",
        "--header", f"X-API-Key: {KEY}", "--max-examples", "40",
        "--seed", "1", "--workers", "2",
        # A paced replay legitimately streams for as long as its data lasts at 1/speed: not for a timeout-based
        # fuzzer (its parameter checks are covered in tests/unit/test_replay.py).
        "--exclude-path", "/v1/replay", "--request-timeout", "10", "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert generated and int(generated.group(1)) == int(generated.group(2)) >= 200, result.stdout[-2000:]
