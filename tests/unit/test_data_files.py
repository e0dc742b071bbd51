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
from k2.storage.internals import PLAIN_COLUMNS_PROPERTY, MetadataSharingTransaction, write_data_files
from k2.storage.internals.files import _only_partition
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


def dictionary_columns(path: str) -> dict[str, bool]:
    """Each Parquet leaf column of a file: whether any of its row groups has a dictionary page."""
    meta = pq.read_metadata(path.removeprefix("file://"))
    found: dict[str, bool] = {}
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            column = meta.row_group(g).column(c)
            found[column.path_in_schema] = found.get(column.path_in_schema, False) or column.has_dictionary_page
    return found


@pytest.mark.parametrize("days", [1, 3], ids=["one day", "three days"])
def test_times_ids_and_offsets_are_written_without_a_dictionary(settings, days):
    """The trades table's plain columns get no dictionary, in either path; the others still do, nested ones too."""
    table = ensure_tables(open_catalog(settings), settings.namespace)[TRADES]
    messages = [
        trade(
            trade_id=f"t{i}",
            source_sequence=i + 1,
            timestamp=T0 + (i % days) * DAY + i,
            trade_conditions=["@", "F"],
            vendor_data={"venue": "x"},
        )
        for i in range(300)
    ]
    rows = to_arrow_batch(raw_batch(messages)).tables[TRADES]
    files = list(write_data_files(table.metadata, rows, table.io, uuid.uuid4()))
    assert len(files) == days
    plain = {"timestamp", "ingestion_timestamp", "source_sequence", "message_id", "trade_id", "source_offset"}
    for data_file in files:
        columns = dictionary_columns(data_file.file_path)
        assert {c for c, has in columns.items() if not has} == plain
        assert columns["symbol"] and columns["price"]
        assert columns["trade_conditions.list.element"] and columns["vendor_data.key_value.key"]
    assert described(files) == described(_dataframe_to_data_files(table.metadata, rows, table.io, uuid.uuid4()))


def test_a_table_without_the_property_keeps_every_dictionary(settings):
    table = ensure_tables(open_catalog(settings), settings.namespace)[TRADES]
    with table.transaction() as transaction:
        transaction.remove_properties(PLAIN_COLUMNS_PROPERTY)
    table = table.refresh()
    files = list(write_data_files(table.metadata, trades([T0 + i for i in range(100)]), table.io, uuid.uuid4()))
    assert all(dictionary_columns(files[0].file_path).values())
