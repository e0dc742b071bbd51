"""The sequence check's column path (a `RowTable` of 64 rows or more) against its row loop, the reference.

Hypothesis writes feeds of a few instruments with every kind of numbering (in order, gaps, repeats, late fills,
restarts with time moving on, no number at all) cut into batches; two trackers take the same batches, one as
Arrow columns and one as row objects, and must agree on every class, every event (in order) and their state.
"""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from k2.ingest.rows import RowTable
from k2.ingest.sequence import COLUMN_PATH_MIN_ROWS, SequenceTracker
from k2.ingest.validate import Rules, validate_batch
from tests.fixtures.market import DROP, T0, raw_batch, trade

RULES = Rules(946_684_800_000_000, 4_102_444_800_000_000)
INSTRUMENTS = [("XNAS", "AAPL"), ("XNAS", "MSFT"), ("XASX", "BHP"), ("XASX", "AAPL")]
HOUR_US = 3_600_000_000


@st.composite
def feeds(draw) -> list[list[bytes]]:
    """Batches of trades: per instrument a running number that mostly steps by one."""
    count = draw(st.integers(COLUMN_PATH_MIN_ROWS, 250))
    numbers = dict.fromkeys(INSTRUMENTS, 0)
    clock = T0
    messages = []
    for i in range(count):
        exchange, symbol = draw(st.sampled_from(INSTRUMENTS))
        move = draw(st.sampled_from(["next"] * 12 + ["gap", "repeat", "back", "restart", "silent_jump", "none"]))
        clock += draw(st.integers(0, 1_000))
        last = numbers[(exchange, symbol)]
        if move == "gap":
            number = last + draw(st.integers(2, 5))
        elif move == "repeat":
            number = max(last, 1)
        elif move == "back":
            number = max(last - draw(st.integers(1, 6)), 0)
        elif move == "restart":
            number, clock = draw(st.integers(0, 1)), clock + 1
        elif move == "silent_jump":
            number, clock = draw(st.integers(1, 50)), clock + HOUR_US
        else:
            number = last + 1
        if move != "none":
            numbers[(exchange, symbol)] = max(number, last) if move in ("repeat", "back") else number
        sequence = DROP if move == "none" else number
        messages.append(
            msgspec.json.encode(
                trade(exchange=exchange, symbol=symbol, trade_id=f"t{i}", source_sequence=sequence, timestamp=clock)
            )
        )
    cuts = sorted(draw(st.lists(st.integers(1, count - 1), max_size=3, unique=True)))
    return [messages[a:b] for a, b in zip([0, *cuts], [*cuts, count], strict=True)]


@settings(max_examples=150, deadline=None)
@given(feeds())
def test_the_column_path_classifies_like_the_row_loop(batches):
    columns, rows = SequenceTracker(), SequenceTracker()
    start = 0
    for values in batches:
        batch = validate_batch(raw_batch(values, start=start), "trade", RULES)
        start += len(values)
        assert isinstance(batch.records, RowTable)
        as_rows = msgspec.structs.replace(batch, records=list(batch.records))
        by_columns = columns.check_batch(batch)
        by_rows = rows.check_batch(as_rows)
        assert by_columns.classes == by_rows.classes
        assert by_columns.sequence_events == by_rows.sequence_events
        assert sorted(columns.to_state()) == sorted(rows.to_state())  # the same state, whatever the key order
