import pytest

from k2.ops.config import load_settings
from k2.storage.catalog import TABLE_NAMES, TABLE_PROPERTIES, ensure_tables, open_catalog

pytestmark = pytest.mark.unit


def test_every_table_gets_the_layout_properties_in_every_warehouse(tmp_path):
    # pyiceberg pops "format-version" from the properties it is given: the shared constant must not lose it, or
    # the next warehouse made in the same process gets tables without it.
    wanted = dict(TABLE_PROPERTIES)
    for n in range(2):
        settings = load_settings({}, data_dir=str(tmp_path / f"k2-{n}"))
        tables = ensure_tables(open_catalog(settings), settings.namespace)
        assert set(tables) == set(TABLE_NAMES)
        for table in tables.values():
            assert table.metadata.format_version == 2
            assert table.properties["write.parquet.row-group-limit"] == wanted["write.parquet.row-group-limit"]
            assert table.properties["write.parquet.compression-codec"] == "lz4"
    assert wanted == TABLE_PROPERTIES


def test_new_tables_name_their_columns_written_without_a_dictionary(tmp_path):
    settings = load_settings({}, data_dir=str(tmp_path / "k2"))
    tables = ensure_tables(open_catalog(settings), settings.namespace)
    for name, table in tables.items():
        plain = table.properties["k2.parquet.plain-columns"].split(",")
        assert "source_offset" in plain
        assert {field.name for field in table.schema().fields} >= set(plain), name  # every one a column of its own
        assert "symbol" not in plain
