"""The compiled sequence check (`CompiledSequenceTracker`, `k2_native.SequenceTracker`) against the Python reference
(`SequenceTracker`), batch by batch.

For any run of batches (a few instruments of two kinds' worth of exchanges and symbols, unsequenced records among
them, numbers that repeat, jump, go back and reach the ends of int64, event times that stand still, go back or
jump past the session gap) and any settings, the two give:
- the same verdict for every record and the same gap and reset events, with their source positions;
- the same state after every batch, the same open gaps per instrument;
- and each resumes from the other's snapshot (msgpack, as the flow stores it) to the same verdicts.
Batches come as Arrow tables in several chunks (what validation hands on) and as row objects.
"""

from __future__ import annotations

from types import SimpleNamespace

import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k2.ingest.rows import RowTable
from k2.ingest.sequence import CompiledSequenceTracker, SeqClass, SequenceTracker
from k2.model.batch import IngestBatch
from tests.fixtures.market import T0

pytestmark = pytest.mark.unit

INT64 = (-(2**63), 2**63 - 1)
SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
INSTRUMENTS = [("XNAS", "AAPL"), ("XNAS", "MSFT"), ("BINANCE", "BTCUSDT"), ("XNAS", "aapl")]

sequences = st.one_of(
    st.none(),
    st.integers(-3, 40),
    st.sampled_from([INT64[0], INT64[0] + 1, INT64[1] - 1, INT64[1], 2**40]),
)
timestamps = st.one_of(
    st.integers(T0, T0 + 50),
    st.integers(T0, T0 + 10_000_000_000),
    st.sampled_from([INT64[0], INT64[1], 0]),
)
messages = st.tuples(st.sampled_from(INSTRUMENTS), sequences, timestamps)
batches = st.lists(st.lists(messages, max_size=40), min_size=1, max_size=6)
limits = st.tuples(
    st.sampled_from([0, 1, 5]),  # reset floor
    st.sampled_from([1, 1_000_000, 3_600_000_000]),  # session gap (µs)
    st.sampled_from([0, 1, 3, 10_000]),  # gap ranges kept
)


def batch_of(items: list, kind: str, start: int, as_table: bool) -> IngestBatch:
    offsets = list(range(start, start + len(items)))
    columns = {
        "exchange": [exchange for (exchange, _), _, _ in items],
        "symbol": [symbol for (_, symbol), _, _ in items],
        "source_sequence": [seq for _, seq, _ in items],
        "timestamp": [ts for _, _, ts in items],
    }
    if as_table:
        schema = pa.schema(
            [
                ("exchange", pa.large_string()),
                ("symbol", pa.large_string()),
                ("source_sequence", pa.int64()),
                ("timestamp", pa.timestamp("us", tz="UTC")),
            ]
        )
        half = len(items) // 2  # two chunks: positions must carry across them
        parts = [{k: v[:half] for k, v in columns.items()}, {k: v[half:] for k, v in columns.items()}]
        table = pa.concat_tables([pa.table(part, schema=schema) for part in parts])
        records = RowTable(kind, table)
    else:
        records = [
            SimpleNamespace(**dict(zip(columns, values, strict=True))) for values in zip(*columns.values(), strict=True)
        ]
    return IngestBatch(
        topic=f"market.{kind}s",
        partition=3,
        kind=kind,
        source_offsets=offsets,
        next_offset=start + len(items),
        records=records,
        offsets=offsets,
        source_timestamps=None,
        dead_letters=[],
    )


def run(tracker, runs: list[list], kind: str, as_table: bool, start: int = 0) -> list:
    """Per batch: (verdicts, events, state after it, open gaps of every instrument)."""
    seen = []
    for items in runs:
        batch = tracker.check_batch(batch_of(items, kind, start, as_table))
        start += len(items)
        gaps = [tracker.open_gaps(kind, exchange, symbol) for exchange, symbol in INSTRUMENTS]
        state = msgspec.msgpack.decode(
            msgspec.msgpack.encode(tracker.to_state())
        )  # a copy: the reference's lists live on
        seen.append((list(batch.classes), batch.sequence_events, state, gaps))
    return seen


@SETTINGS
@given(runs=batches, limits=limits, kind=st.sampled_from(["trade", "quote"]), as_table=st.booleans())
def test_compiled_check_matches_the_reference(runs, limits, kind, as_table):
    reference, compiled = SequenceTracker(*limits), CompiledSequenceTracker(*limits)
    assert run(compiled, runs, kind, as_table) == run(reference, runs, kind, as_table)
    assert len(compiled) == len(reference)


@SETTINGS
@given(before=batches, after=batches, limits=limits, kind=st.sampled_from(["trade", "quote"]))
def test_each_resumes_from_the_others_snapshot(before, after, limits, kind):
    reference, compiled = SequenceTracker(*limits), CompiledSequenceTracker(*limits)
    run(reference, before, kind, as_table=True)
    run(compiled, before, kind, as_table=True)
    stored = {name: msgspec.msgpack.encode(t.to_state()) for name, t in (("py", reference), ("native", compiled))}
    assert stored["py"] == stored["native"]
    from_reference, from_compiled = CompiledSequenceTracker(*limits), SequenceTracker(*limits)
    from_reference.load_state(msgspec.msgpack.decode(stored["py"]))
    from_compiled.load_state(msgspec.msgpack.decode(stored["native"]))
    expected = run(reference, after, kind, as_table=True, start=1_000)
    assert run(from_reference, after, kind, as_table=True, start=1_000) == expected
    assert run(from_compiled, after, kind, as_table=True, start=1_000) == expected


def test_verdicts_of_a_known_run():
    """Fixed expectations written here (not taken from either tracker): in order, gap, late fill, duplicate, reset."""
    items = [(("XNAS", "AAPL"), s, T0 + i) for i, s in enumerate([1, 2, 5, 3, 3, 6])]
    items.append((("XNAS", "AAPL"), 1, T0 + 3_600_000_000 + 100))  # back to 1, an hour later: a new session
    items.append((("XNAS", "AAPL"), None, T0))
    batch = CompiledSequenceTracker().check_batch(batch_of(items, "trade", 100, as_table=True))
    assert list(batch.classes) == [
        SeqClass.IN_ORDER,
        SeqClass.IN_ORDER,
        SeqClass.GAP,
        SeqClass.LATE,
        SeqClass.DUPLICATE,
        SeqClass.IN_ORDER,
        SeqClass.RESET,
        SeqClass.UNSEQUENCED,
    ]
    gap, reset = batch.sequence_events
    assert (gap.event, gap.expected_sequence, gap.received_sequence, gap.missing_count) == ("gap", 3, 5, 2)
    assert (gap.source_topic, gap.source_partition, gap.source_offset) == ("market.trades", 3, 102)
    assert (reset.event, reset.session, reset.received_sequence, reset.source_offset) == ("reset", 0, 1, 106)


def test_a_column_of_the_wrong_type_is_a_clear_error():
    tracker = CompiledSequenceTracker()
    wrong = pa.record_batch(
        [pa.array([1.5]), pa.array(["XNAS"]), pa.array(["AAPL"]), pa.array([T0])],
        names=["source_sequence", "exchange", "symbol", "timestamp"],
    )
    with pytest.raises(ValueError, match="source_sequence must be int64"):
        tracker._native.check("trade", wrong)
