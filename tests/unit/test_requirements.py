"""The one skip policy (tests/fixtures/requirements.py): a missing tool fails the test under CI and skips it
elsewhere; a present tool lets the test run."""

from __future__ import annotations

import pytest

from tests.fixtures.requirements import BROKER_VARIABLES, require, require_executable

POLICY_VARIABLES = ("CI", "K2_REQUIRE_BROKER")


@pytest.fixture
def clean_env(monkeypatch):
    for name in POLICY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_present_requirement_runs_the_test_even_under_ci(clean_env):
    clean_env.setenv("CI", "true")
    assert require("promtool", None, hint="make system-deps") is None


@pytest.mark.parametrize("value", ["true", "1", "yes", "True"])
def test_under_ci_a_missing_tool_fails_instead_of_skipping(clean_env, value):
    clean_env.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"needs promtool: no `promtool` on PATH; make system-deps.*CI"):
        require("promtool", "no `promtool` on PATH", hint="make system-deps")


@pytest.mark.parametrize("value", [None, "", "0", "false", "no", "off"])
def test_outside_ci_a_missing_tool_skips_with_its_reason(clean_env, value):
    if value is not None:
        clean_env.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match=r"needs Chromium: no /usr/bin/chromium; make system-deps$"):
        require("Chromium", "no /usr/bin/chromium", hint="make system-deps")


def test_k2_require_broker_makes_the_broker_strict_but_not_other_tools(clean_env):
    clean_env.setenv("K2_REQUIRE_BROKER", "1")
    with pytest.raises(pytest.fail.Exception, match="K2_REQUIRE_BROKER is set"):
        require("a Kafka broker", "no `java` on PATH", variables=BROKER_VARIABLES)
    with pytest.raises(pytest.skip.Exception):
        require("promtool", "no `promtool` on PATH")


def test_require_executable_finds_a_tool_on_path_and_holds_a_missing_one_to_the_policy(clean_env, tmp_path):
    tool = tmp_path / "k2-fake-tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    clean_env.setenv("PATH", str(tmp_path))
    assert require_executable("k2-fake-tool") == str(tool)
    with pytest.raises(pytest.skip.Exception, match="no `k2-missing-tool` on PATH"):
        require_executable("k2-missing-tool")
    clean_env.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no `k2-missing-tool` on PATH"):
        require_executable("k2-missing-tool")


def test_the_kafka_fixture_follows_the_same_policy(clean_env):
    from tests.fixtures.kafka import _no_broker, broker_required

    assert not broker_required()
    with pytest.raises(pytest.skip.Exception, match="needs a Kafka broker: testcontainers: Docker unavailable"):
        _no_broker(["testcontainers: Docker unavailable (DockerException)"])
    clean_env.setenv("CI", "true")
    assert broker_required()
    with pytest.raises(pytest.fail.Exception, match="needs a Kafka broker"):
        _no_broker(["local JVM broker: no `java` on PATH"])
