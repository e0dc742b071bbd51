import msgspec
import pytest

from k2.ingest.dedupe import Deduper, RecentKeys
from k2.ingest.sequence import CompiledSequenceTracker, SequenceTracker
from k2.ingest.validate import Rules, validate_batch
from tests.fixtures.market import T0, raw_batch, trade

RULES = Rules(946_684_800_000_000, 4_102_444_800_000_000)
SECOND = 1_000_000


def run(messages, deduper=None, tracker=None):  # the Python reference tracker: its verdicts as a list
    batch = validate_batch(raw_batch(messages), "trade", RULES)
    batch = (SequenceTracker() if tracker is None else tracker).check_batch(batch)
    return (deduper or Deduper(horizon_us=60 * SECOND, max_keys=1000)).dedupe_batch(batch)


def test_sequenced_duplicates_dropped_even_with_other_ids():
    batch = run(
        [
            trade(source_sequence=1, trade_id="a"),
            trade(source_sequence=1, trade_id="b"),
            trade(source_sequence=2, trade_id="c"),
        ]
    )
    assert [r.trade_id for r in batch.records] == ["a", "c"]
    assert batch.offsets == [0, 2] and batch.duplicates == 1


def test_message_id_is_never_the_key():
    batch = run([trade(source_sequence=1, message_id="m"), trade(source_sequence=2, message_id="m")])
    assert len(batch.records) == 2 and batch.duplicates == 0


def test_unsequenced_deduped_on_trade_id():
    batch = run(
        [
            trade(source_sequence=None, trade_id="a"),
            trade(source_sequence=None, trade_id="a", price="2"),
            trade(source_sequence=None, trade_id="b"),
        ]
    )
    assert [r.trade_id for r in batch.records] == ["a", "b"] and batch.duplicates == 1


def test_identical_fills_with_distinct_sequences_are_kept():
    # Real feeds have byte-identical fills in one microsecond: only the natural key decides.
    batch = run([trade(source_sequence=1, trade_id="x"), trade(source_sequence=2, trade_id="x")])
    assert len(batch.records) == 2


def test_horizon_forgets_old_keys_by_event_time():
    keys = RecentKeys(horizon_us=10 * SECOND, max_keys=100)
    assert keys.add(("X", "S", "a"), T0)
    assert keys.add(("X", "S", "b"), T0 + 5 * SECOND)
    keys.evict()
    assert len(keys) == 2
    assert keys.add(("X", "S", "c"), T0 + 12 * SECOND)
    keys.evict()
    assert len(keys) == 2  # "a" is older than newest - horizon
    assert keys.add(("X", "S", "a"), T0 + 13 * SECOND)  # so it is accepted again: the documented bound
    assert not keys.add(("X", "S", "b"), T0 + 13 * SECOND)


def test_size_cap_evicts_oldest_first():
    keys = RecentKeys(horizon_us=10**12, max_keys=3)
    for i in range(5):
        keys.add(("X", "S", str(i)), T0 + i)
    keys.evict()
    assert len(keys) == 3
    assert keys.add(("X", "S", "0"), T0)  # evicted
    assert not keys.add(("X", "S", "4"), T0)  # kept


def test_dedupe_is_deterministic_and_state_resumes():
    messages = [trade(source_sequence=None, trade_id=str(i % 7)) for i in range(20)]
    first, second = run(messages), run(messages)
    assert [r.trade_id for r in first.records] == [r.trade_id for r in second.records] == [str(i) for i in range(7)]
    deduper = Deduper(horizon_us=60 * SECOND, max_keys=1000)
    run(messages[:10], deduper)
    resumed = Deduper(horizon_us=60 * SECOND, max_keys=1000)
    resumed.recent.load_state(msgspec.msgpack.decode(msgspec.msgpack.encode(deduper.recent.to_state())))
    assert run(messages[10:], resumed).records == []


@pytest.mark.parametrize("duplicates", [[], [0], [5], [0, 5], [1, 2, 3], [0, 1, 2, 3, 4, 5], [2, 4]])
def test_duplicates_anywhere_in_a_batch_leave_the_rest_in_order(duplicates):
    """Six messages with fresh numbers, the ones at `duplicates` repeating the number before them (a repeat of
    message 0 repeats a number from an earlier batch); the compiled tracker's verdicts (bytes) drive dedupe."""
    tracker = CompiledSequenceTracker()
    run([trade(source_sequence=1, trade_id="earlier")], tracker=tracker)
    numbers, messages = 1, []
    for i in range(6):
        numbers += 0 if i in duplicates else 1
        messages.append(trade(source_sequence=numbers, trade_id=f"t{i}"))
    batch = run(messages, tracker=tracker)
    kept = [i for i in range(6) if i not in duplicates]
    assert [r.trade_id for r in batch.records] == [f"t{i}" for i in kept]
    assert batch.offsets == kept and list(batch.classes) == [0] * len(kept)
    assert batch.duplicate_offsets == duplicates
