"""The order a commit writes its rows in (`k2.storage.commit._sorted`): the table's sort columns ascending, nulls
last, over rows that arrive as many chunks, checked against Python's own sort of the same rows."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from k2.storage.commit import _sorted

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([("symbol", pa.string()), ("timestamp", pa.int64()), ("source_sequence", pa.int64())])
KEYS = ("symbol", "timestamp", "source_sequence")

rows = st.tuples(
    st.sampled_from(["AAPL", "BHP", "BTC-USD", "ZZ", "A"]),
    st.integers(-(2**62), 2**62),
    st.one_of(st.none(), st.integers(0, 5)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(rows, max_size=12), min_size=1, max_size=6))
def test_rows_of_many_chunks_come_out_in_the_sort_columns_order(chunks):
    tables = [pa.Table.from_pylist([dict(zip(KEYS, row, strict=True)) for row in chunk], SCHEMA) for chunk in chunks]
    data = pa.concat_tables(tables)
    # Python's sort of the same rows: by each column in turn, a null sequence after every number.
    flat = [row for chunk in chunks for row in chunk]
    expected = sorted(flat, key=lambda r: (r[0], r[1], r[2] is None, r[2] or 0))
    got = _sorted(data, KEYS)
    assert [tuple(r.values()) for r in got.to_pylist()] == expected
    assert got.schema == SCHEMA
