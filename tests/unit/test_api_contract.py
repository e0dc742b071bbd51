"""The OpenAPI document tells the truth about the API: schemathesis reads it from the app, generates requests from it
(schema-valid and not) for every `/v1` route, sends them in-process, and runs all of its checks on the answers.

schemathesis's own checks, none excluded: a request the schema allows is answered (a snapshot, time or cursor naming
nothing is a 404, realtime reads without a Kafka tail a 409, never a 400), one it forbids is refused, and a server
error, an undocumented status or media type, or a body off its schema fails the test.
"""

from __future__ import annotations

import contextlib
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from schemathesis import GenerationMode

from api.app import create_app
from k2.ops.config import load_settings
from k2.query.params import (
    CURSOR_PATTERN,
    INTERVAL_PATTERN,
    MAX_US,
    MIN_US,
    TIME_PATTERN,
    Cursor,
    NotFound,
    parse_interval,
    parse_time,
)
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import T0, quote, raw_batch, trade

KEY = "contract-key"
DATA_ROUTES = ["/v1/trades", "/v1/quotes", "/v1/bars", "/v1/latest", "/v1/asof", "/v1/symbols", "/v1/snapshots",
               "/v1/gaps", "/v1/dead-letters", "/v1/replay"]  # fmt: skip


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    settings = load_settings({}, data_dir=str(tmp_path_factory.mktemp("contract") / "k2"), epoch_seconds=0.05,
                             api_keys=KEY, api_rate_limit=0, query_refresh_seconds=0)  # fmt: skip
    trades = [trade(trade_id=str(i), source_sequence=i, timestamp=T0 + i * 1_000_000) for i in range(1, 6)]
    run_ingest(
        settings, [raw_batch([*trades, b"{broken"], "market.trades", 0), raw_batch([quote()], "market.quotes", 0)]
    )
    return create_app(settings)


@pytest.fixture(scope="module")
def spec(app) -> dict:
    with TestClient(app) as client:
        return client.get("/schema/openapi.json").json()


@pytest.fixture(scope="module")
def api_schema(app):
    config = schemathesis.Config.from_dict({"auth": {"openapi": {"apiKey": {"api_key": KEY}}}})
    return schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config)


# The paced replay streams for as long as its data lasts at 1/speed: not for a fuzzer (tests/unit/test_replay.py).
@pytest.mark.parametrize("path", [path for path in DATA_ROUTES if path != "/v1/replay"])
def test_every_route_answers_as_its_schema_says(api_schema, path):
    operation = api_schema[path]["GET"]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    statuses = set()

    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def answers_as_documented(case: schemathesis.Case) -> None:
        statuses.add(case.call_and_validate().status_code)

    answers_as_documented()
    # The key was sent, and requests of both kinds were made: schema-invalid ones refused (a bad parameter or key).
    assert 200 in statuses and statuses & {400, 401}, statuses


@pytest.mark.parametrize("path", DATA_ROUTES)
def test_every_data_route_documents_its_problems_and_choices(spec, path):
    operation = spec["paths"][path]["get"]
    names = {p["name"] for p in operation["parameters"]}
    problems = {"400", "401", "403", "429", "500"}
    problems |= {"404"} if names & {"snapshot_id", "as_of", "cursor"} else set()  # can name what does not exist
    problems |= {"409"} if "freshness" in names else set()  # can ask a service without Kafka for realtime reads
    assert set(operation["responses"]) == {"200", *problems}, path
    for status in problems:
        content = operation["responses"][status]["content"]
        assert list(content) == ["application/problem+json"], (path, status)
    problem = spec["components"]["schemas"]["Problem"]
    assert {"status", "detail"} <= set(problem["required"]) and "extra" in problem["properties"]
    choices = {p["name"]: p["schema"].get("enum") for p in operation["parameters"]}
    for name in {"format", "freshness", "table", "tz"} & set(choices):
        assert choices[name], (path, name)  # the values it takes are listed


def test_enumerated_parameters_are_enums(spec):
    parameters = {p["name"]: p["schema"] for p in spec["paths"]["/v1/snapshots"]["get"]["parameters"]}
    assert parameters["table"]["enum"] == ["trades", "quotes", "dead_letters", "sequence_gaps"]
    bars = {p["name"]: p["schema"] for p in spec["paths"]["/v1/bars"]["get"]["parameters"]}
    assert "Australia/Sydney" in bars["tz"]["enum"] and "localtime" not in bars["tz"]["enum"]
    assert bars["interval"]["pattern"] == INTERVAL_PATTERN and bars["start"]["pattern"] == TIME_PATTERN
    ok = spec["paths"]["/v1/trades"]["get"]["responses"]["200"]["content"]
    assert list(ok) == ["application/json", "text/csv", "application/vnd.apache.parquet",
                        "application/vnd.apache.arrow.stream"]  # fmt: skip
    replay = spec["paths"]["/v1/replay"]["get"]["responses"]["200"]["content"]
    assert list(replay) == ["application/x-ndjson", "application/vnd.apache.arrow.stream"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.from_regex(TIME_PATTERN, fullmatch=True), interval=st.from_regex(INTERVAL_PATTERN, fullmatch=True))
def test_what_the_patterns_allow_parses(text, interval):
    value = parse_time(text)
    assert value is None or MIN_US <= value <= MAX_US
    assert parse_interval(interval).approx_us > 0


CURSORS = st.builds(
    Cursor,
    snapshot_id=st.integers(-(2**63), 2**63 - 1),
    timestamp=st.integers(MIN_US, MAX_US),
    topic=st.from_regex(r"[A-Za-z0-9._-]{0,249}", fullmatch=True),  # what Kafka takes as a topic name
    partition=st.integers(0, 2**31 - 1),
    offset=st.integers(0, 2**63 - 1),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(cursor=CURSORS, text=st.from_regex(CURSOR_PATTERN, fullmatch=True))
def test_cursors_are_of_their_pattern_and_the_rest_of_it_names_no_page(cursor, text):
    encoded = cursor.encode()
    assert re.fullmatch(CURSOR_PATTERN, encoded) and len(encoded) <= 512 and Cursor.decode(encoded) == cursor
    with contextlib.suppress(NotFound):  # of the encoder's form but no cursor: a 404, never a 400 or an error
        assert re.fullmatch(CURSOR_PATTERN, Cursor.decode(text).encode())
