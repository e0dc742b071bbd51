import msgspec
import pytest

from k2.ingest.sequence import SeqClass, SequenceTracker
from k2.ingest.validate import Rules, validate_batch
from tests.fixtures.market import T0, raw_batch, trade

KEY = ("trade", "XNAS", "AAPL")
MINUTE = 60_000_000
HOUR = 60 * MINUTE


def classify_all(tracker, items):
    return [tracker.classify(KEY, seq, ts)[0] for seq, ts in items]


def test_in_order_then_gap_then_late_fill_then_duplicate():
    tracker = SequenceTracker()
    classes = classify_all(tracker, [(1, T0), (2, T0 + 1), (5, T0 + 2), (3, T0 + 1), (3, T0 + 1), (4, T0 + 2), (2, T0)])
    assert classes == [
        SeqClass.IN_ORDER,
        SeqClass.IN_ORDER,
        SeqClass.GAP,
        SeqClass.LATE,
        SeqClass.DUPLICATE,
        SeqClass.LATE,
        SeqClass.DUPLICATE,
    ]
    assert tracker.open_gaps(*KEY) == []


def test_gap_event_names_the_missing_range():
    tracker = SequenceTracker()
    tracker.classify(KEY, 10, T0)
    cls, event = tracker.classify(KEY, 14, T0 + 5)
    assert cls is SeqClass.GAP
    assert (event.event, event.expected_sequence, event.received_sequence, event.missing_count) == ("gap", 11, 14, 3)
    assert (event.timestamp, event.previous_timestamp) == (T0 + 5, T0)
    assert tracker.open_gaps(*KEY) == [(11, 13)]


def test_late_fill_in_the_middle_splits_the_gap():
    tracker = SequenceTracker()
    classify_all(tracker, [(1, T0), (10, T0 + 9)])
    assert tracker.classify(KEY, 5, T0 + 4)[0] is SeqClass.LATE
    assert tracker.open_gaps(*KEY) == [(2, 4), (6, 9)]
    assert tracker.classify(KEY, 2, T0 + 1)[0] is SeqClass.LATE
    assert tracker.classify(KEY, 9, T0 + 8)[0] is SeqClass.LATE
    assert tracker.open_gaps(*KEY) == [(3, 4), (6, 8)]
    assert tracker.classify(KEY, 5, T0 + 4)[0] is SeqClass.DUPLICATE


def test_reset_when_the_count_restarts_later_in_event_time():
    tracker = SequenceTracker(reset_floor=1)
    classify_all(tracker, [(1, T0), (2, T0 + 1), (3, T0 + 2)])
    cls, event = tracker.classify(KEY, 1, T0 + MINUTE)
    assert cls is SeqClass.RESET and event.event == "reset" and event.session == 0
    assert tracker.classify(KEY, 2, T0 + MINUTE + 1)[0] is SeqClass.IN_ORDER  # the new session counts on


def test_reset_to_a_higher_number_after_a_long_silence():
    tracker = SequenceTracker(reset_floor=1, session_gap_us=HOUR)
    classify_all(tracker, [(500, T0), (501, T0 + 1)])
    assert tracker.classify(KEY, 7, T0 + 16 * HOUR)[0] is SeqClass.RESET


def test_a_backward_number_with_an_older_timestamp_is_not_a_reset():
    tracker = SequenceTracker(reset_floor=1)
    classify_all(tracker, [(1, T0 + 10), (2, T0 + 20)])
    # sequence 1 re-sent with its original time: a duplicate, not a new session
    assert tracker.classify(KEY, 1, T0 + 10)[0] is SeqClass.DUPLICATE


def test_instruments_and_kinds_are_independent():
    tracker = SequenceTracker()
    assert tracker.classify(("trade", "XNAS", "AAPL"), 1, T0)[0] is SeqClass.IN_ORDER
    assert tracker.classify(("trade", "XNAS", "MSFT"), 7, T0)[0] is SeqClass.IN_ORDER
    assert tracker.classify(("quote", "XNAS", "AAPL"), 3, T0)[0] is SeqClass.IN_ORDER
    assert tracker.classify(("trade", "XNAS", "AAPL"), 2, T0)[0] is SeqClass.IN_ORDER
    assert len(tracker) == 3


def test_gap_memory_is_bounded():
    tracker = SequenceTracker(max_gap_ranges=3)
    for i in range(10):
        tracker.classify(KEY, 1 + 2 * i, T0 + i)  # every other number missing
    assert tracker.open_gaps(*KEY) == [(14, 14), (16, 16), (18, 18)]


def test_state_round_trips_through_msgpack():
    tracker = SequenceTracker()
    classify_all(tracker, [(1, T0), (5, T0 + 1)])
    resumed = SequenceTracker()
    resumed.load_state(msgspec.msgpack.decode(msgspec.msgpack.encode(tracker.to_state())))
    assert resumed.open_gaps(*KEY) == [(2, 4)]
    assert resumed.classify(KEY, 3, T0)[0] is SeqClass.LATE
    assert resumed.classify(KEY, 6, T0 + 2)[0] is SeqClass.IN_ORDER


def test_check_batch_marks_unsequenced_and_positions_events():
    rules = Rules(946_684_800_000_000, 4_102_444_800_000_000)
    messages = [trade(source_sequence=1), trade(source_sequence=None, trade_id="x"), trade(source_sequence=4)]
    batch = validate_batch(raw_batch(messages, topic="market.trades", partition=2, start=100), "trade", rules)
    batch = SequenceTracker().check_batch(batch)
    assert batch.classes == [SeqClass.IN_ORDER, SeqClass.UNSEQUENCED, SeqClass.GAP]
    (event,) = batch.sequence_events
    assert (event.source_topic, event.source_partition, event.source_offset) == ("market.trades", 2, 102)


@pytest.mark.parametrize("order", [[1, 2, 3, 4, 5], [1, 3, 2, 5, 4], [5, 4, 3, 2, 1][::-1]])
def test_any_arrival_order_of_a_session_keeps_every_number_once(order):
    tracker = SequenceTracker()
    classes = [tracker.classify(KEY, seq, T0 + seq)[0] for seq in order]
    assert SeqClass.DUPLICATE not in classes
    assert tracker.open_gaps(*KEY) == []


def test_joining_mid_session_an_earlier_number_is_late_not_a_duplicate():
    tracker = SequenceTracker()
    assert tracker.classify(KEY, 2, T0 + 2)[0] is SeqClass.IN_ORDER
    assert tracker.classify(KEY, 1, T0 + 1)[0] is SeqClass.LATE  # reordered before we saw it: kept
    assert tracker.classify(KEY, 1, T0 + 1)[0] is SeqClass.DUPLICATE
    assert tracker.open_gaps(*KEY) == []  # what came before the first message seen is not a gap
