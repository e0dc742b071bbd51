"""`k2.storage.internals.write_data_files` (rows of one partition written without pyiceberg's split) against
pyiceberg's own `_dataframe_to_data_files`: the same partitions, counts and rows, in a temp-dir warehouse."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.io.pyarrow import _dataframe_to_data_files

from k2.ingest.columnar import ARROW_SCHEMAS
from k2.storage.catalog import TRADES, ensure_tables, open_catalog, read_table
from k2.storage.internals import MetadataSharingTransaction, _only_partition, write_data_files
from tests.fixtures.market import T0, raw_batch, to_arrow_batch, trade

pytestmark = pytest.mark.unit

DAY = 86_400_000_000


def trades(timestamps: list[int]) -> pa.Table:
    messages = [trade(trade_id=f"t{i}", source_sequence=i + 1, timestamp=ts) for i, ts in enumerate(timestamps)]
    return to_arrow_batch(raw_batch(messages)).tables[TRADES]


def described(files) -> list[tuple]:
    """Each data file's partition (days since the epoch) and rows, and the rows read back from it."""
    return sorted(
        (tuple(f.partition), f.record_count, pq.read_table(f.file_path.removeprefix("file://")).to_pylist().__repr__())
        for f in files
    )


@pytest.mark.parametrize(
    "timestamps",
    [
        [T0 + i for i in range(50)],  # one day: written as it is
        [T0 + (i % 3) * DAY for i in range(50)],  # three days: pyiceberg's split
        [T0 + 2 * DAY - 1, T0 + 2 * DAY],  # either side of midnight
    ],
    ids=["one day", "three days", "midnight"],
)
def test_the_same_files_as_pyiceberg(settings, timestamps):
    table = ensure_tables(open_catalog(settings), settings.namespace)[TRADES]
    rows = trades(timestamps)
    ours = list(write_data_files(table.metadata, rows, table.io, uuid.uuid4()))
    theirs = list(_dataframe_to_data_files(table.metadata, rows, table.io, uuid.uuid4()))
    days = {ts // DAY for ts in timestamps}
    assert (_only_partition(table.metadata, rows) is not None) == (len(days) == 1)  # which path wrote them
    assert sorted(f.partition[0] for f in ours) == sorted(days)
    assert described(ours) == described(theirs)
    assert sum(f.record_count for f in ours) == len(timestamps)


def test_an_append_through_the_transaction_reads_back_every_row(settings):
    table = ensure_tables(open_catalog(settings), settings.namespace)[TRADES]
    rows = trades([T0 + i for i in range(20)] + [T0 + DAY])
    with MetadataSharingTransaction(table) as transaction:
        transaction.append(rows, snapshot_properties={"k2.test": "1"})
    table = table.refresh()
    back = read_table(table, ["trade_id", "timestamp"]).sort_by("trade_id")
    assert back.column("trade_id").to_pylist() == sorted(f"t{i}" for i in range(21))
    assert table.current_snapshot().summary["k2.test"] == "1"
    assert table.current_snapshot().summary["added-data-files"] == "2"  # two days, two files
    assert rows.schema == ARROW_SCHEMAS[TRADES]


def test_rows_that_do_not_fit_the_table_are_refused_every_time(settings):
    """The schema check is done once per Arrow schema, and a schema that failed it fails again (never cached)."""
    table = ensure_tables(open_catalog(settings), settings.namespace)[TRADES]
    rows = trades([T0])
    wrong = rows.set_column(rows.schema.get_field_index("price"), "price", pa.array(["1.5"], pa.large_string()))
    for _ in range(2):
        with pytest.raises(ValueError, match="Mismatch in fields"), MetadataSharingTransaction(table) as transaction:
            transaction.append(wrong)
    with MetadataSharingTransaction(table) as transaction:
        transaction.append(rows)  # the table's own schema still goes through
    assert read_table(table.refresh(), ["trade_id"]).num_rows == 1
