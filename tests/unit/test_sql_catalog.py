"""`k2.storage.internals.MetadataCachingSqlCatalog` (the SQL catalog K2 opens) against pyiceberg's own `SqlCatalog`
on the same temp-dir warehouse: what one writes the other reads, a commit from elsewhere is never hidden by the
cache, and an append from a stale table lands on top of a concurrent commit (pyiceberg's check finds the conflict,
its retry appends again) without losing it; `updated_metadata` against pyiceberg's `update_table_metadata`."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table.update import update_table_metadata

from k2.storage.catalog import TRADES, ensure_tables, open_catalog, read_table
from k2.storage.internals import MetadataSharingTransaction, updated_metadata
from k2.storage.internals.sql_catalog import MetadataCachingSqlCatalog
from tests.fixtures.market import T0, raw_batch, to_arrow_batch, trade

pytestmark = pytest.mark.unit


def trades(first: int, count: int) -> pa.Table:
    messages = [trade(trade_id=f"t{i}", source_sequence=i + 1, timestamp=T0 + i) for i in range(first, first + count)]
    return to_arrow_batch(raw_batch(messages)).tables[TRADES]


def plain_catalog(settings) -> SqlCatalog:
    return SqlCatalog(settings.catalog_name, uri=settings.resolved_catalog_uri, warehouse=settings.resolved_warehouse)


def append(table, rows: pa.Table, **summary: str) -> None:
    with MetadataSharingTransaction(table) as transaction:
        transaction.append(rows, snapshot_properties=summary)


def test_k2_opens_the_caching_sql_catalog(settings):
    assert isinstance(open_catalog(settings), MetadataCachingSqlCatalog)


def test_what_it_commits_is_what_the_file_says(settings):
    """The metadata kept after a commit is the one written: pyiceberg's own catalog, parsing the file, reads it."""
    catalog = open_catalog(settings)
    table = ensure_tables(catalog, settings.namespace)[TRADES]
    for n in range(3):
        append(table, trades(10 * n, 10), **{"k2.test": str(n)})
    ours = catalog.load_table((settings.namespace, TRADES))
    theirs = plain_catalog(settings).load_table((settings.namespace, TRADES))
    assert ours.metadata_location == theirs.metadata_location
    assert ours.metadata.model_dump() == theirs.metadata.model_dump()
    assert [s.summary["k2.test"] for s in theirs.snapshots()] == ["0", "1", "2"]
    assert read_table(theirs, ["trade_id"]).num_rows == 30


def test_a_commit_from_elsewhere_is_seen_and_never_overwritten(settings):
    catalog = open_catalog(settings)
    table = ensure_tables(catalog, settings.namespace)[TRADES]
    append(table, trades(0, 5))
    stale = catalog.load_table((settings.namespace, TRADES))
    other = plain_catalog(settings).load_table((settings.namespace, TRADES))
    append(other, trades(5, 7), **{"k2.test": "elsewhere"})
    seen = catalog.load_table((settings.namespace, TRADES))
    assert seen.current_snapshot().summary["k2.test"] == "elsewhere"
    assert read_table(seen, ["trade_id"]).num_rows == 12
    append(stale, trades(20, 3), **{"k2.test": "stale"})  # its base is no longer the table's snapshot
    now = catalog.load_table((settings.namespace, TRADES))
    assert now.current_snapshot().summary["k2.test"] == "stale"
    assert now.current_snapshot().parent_snapshot_id == seen.current_snapshot().snapshot_id
    assert read_table(now, ["trade_id"]).num_rows == 15


def test_staged_metadata_is_pyicebergs_without_the_copy(settings):
    table = ensure_tables(open_catalog(settings), settings.namespace)[TRADES]
    append(table, trades(0, 5))
    transaction = MetadataSharingTransaction(table)
    transaction.set_properties({"k2.test": "x"})
    transaction.append(trades(5, 5))
    updates = transaction._updates
    ours = updated_metadata(table.metadata, updates, table.metadata_location).model_dump()
    theirs = update_table_metadata(table.metadata, updates, metadata_location=table.metadata_location).model_dump()
    assert ours.pop("last-updated-ms") >= table.metadata.last_updated_ms
    theirs.pop("last-updated-ms")
    assert ours == theirs
    assert ours["properties"]["k2.test"] == "x" and len(ours["snapshots"]) == 2
    assert ours["metadata-log"][-1]["metadata-file"] == table.metadata_location
