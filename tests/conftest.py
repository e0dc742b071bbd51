"""Shared fixtures. Each suite's directory name is also its marker, so `pytest -m unit` selects tests/unit."""

from __future__ import annotations

from pathlib import Path

import pytest

from k2.ops.config import Settings, load_settings
from k2.storage.catalog import ensure_tables, open_catalog

pytest_plugins = ["tests.fixtures.kafka"]

SUITES = ("unit", "integration", "performance", "chaos", "soak", "operational")
ASX_SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "asx"  # a copy of ../shared's asx-sample


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
