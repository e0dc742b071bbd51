"""Shared fixtures and options. Each suite's directory name is also its marker, so `pytest -m unit` selects
tests/unit.

Options:

* ``--start-services``: start the real services the integration tests use (the Kafka broker of
  ``tests.fixtures.kafka``) once, at the start of the session, rather than when the first test asks for one; a
  broker that cannot start then stops the run at once with the reason (under xdist: fails every test with it), as
  under ``K2_REQUIRE_BROKER=1`` it never skips.
* pytest-benchmark times the ``benchmark`` fixture only when asked (``--benchmark-only``, ``--benchmark-enable``,
  or a ``--benchmark-json/-save/-autosave`` to write the figures to); otherwise each benchmarked function runs
  once, untimed, with its checks (``--benchmark-disable``): ``pytest tests`` (CI) stays as fast as before.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from k2.ops.config import Settings, load_settings
from k2.storage.catalog import ensure_tables, open_catalog

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.schema_registry"]

SUITES = ("unit", "integration", "performance", "chaos", "soak", "operational")
ASX_SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "asx"  # a copy of ../shared's asx-sample
# pytest-benchmark options that ask for timed figures; without one of them benchmarks run once, untimed.
BENCHMARK_TIMING_OPTIONS = (
    "benchmark_only",
    "benchmark_enable",
    "benchmark_json",
    "benchmark_save",
    "benchmark_autosave",
)
_BENCHMARKS_UNTIMED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--start-services",
        action="store_true",
        default=False,
        help="start the real services the integration tests need (a local Kafka broker, see tests/fixtures/kafka.py) "
        "at session start, and stop the run at once if one cannot start",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Before pytest-benchmark's own pytest_configure (trylast), which reads the option.
    if hasattr(config.option, "benchmark_disable") and not any(
        getattr(config.option, name, None) for name in BENCHMARK_TIMING_OPTIONS
    ):
        config.option.benchmark_disable = True
        config.stash[_BENCHMARKS_UNTIMED] = True
    if config.getoption("start_services"):
        os.environ["K2_REQUIRE_BROKER"] = "1"  # a broker that cannot start fails, never skips (xdist workers too)


def pytest_report_header(config: pytest.Config) -> str | None:
    if config.stash.get(_BENCHMARKS_UNTIMED, False):
        return "benchmarks: each run once, untimed (--benchmark-only or --benchmark-enable times them)"
    return None


@pytest.fixture(scope="session", autouse=True)
def started_services(request: pytest.FixtureRequest) -> dict[str, str]:
    """With ``--start-services``: the services started for the session, by name (``{"kafka": "host:port"}``)."""
    if not request.config.getoption("start_services"):
        return {}
    began = time.monotonic()
    try:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
    except (pytest.fail.Exception, pytest.skip.Exception) as exc:
        reason = f"--start-services: the Kafka broker did not start: {exc}"
        if os.environ.get("PYTEST_XDIST_WORKER"):  # xdist's controller cannot report a worker's exit: fail each test
            pytest.fail(reason, pytrace=False)
        pytest.exit(reason, returncode=pytest.ExitCode.TESTS_FAILED)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:  # xdist workers have no terminal: their output is not shown
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"--start-services: Kafka at {bootstrap} ({time.monotonic() - began:.1f} s)")
    return {"kafka": bootstrap}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for suite in SUITES:
            if suite in parts:
                item.add_marker(getattr(pytest.mark, suite))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a private warehouse: SQLite catalog and local folder under tmp_path."""
    return load_settings({}, data_dir=str(tmp_path / "k2"), epoch_seconds=0.05)


@pytest.fixture
def catalog(settings: Settings):
    catalog = open_catalog(settings)
    ensure_tables(catalog, settings.namespace)
    return catalog
