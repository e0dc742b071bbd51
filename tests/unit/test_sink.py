"""The commit protocol on a real temp warehouse: seams, the re-send filter, exact counts, heartbeats."""

import pickle
import threading

import pyarrow as pa
import pytest

from k2.flow.iceberg_sink import IcebergSink
from k2.ingest.validate import Rules
from k2.kafka.producer import DeliveryError
from k2.storage.catalog import DEAD_LETTERS, TRADES, open_catalog, read_table
from k2.storage.seams import committed_offsets, resume_offsets, summed_property
from k2.storage.writer import IcebergWriter
from tests.fixtures.market import raw_batch, to_arrow_batch, trade

RULES = Rules(946_684_800_000_000, 4_102_444_800_000_000)


def arrow_batch(start: int, count: int, duplicate_every: int = 0):
    messages = []
    for offset in range(start, start + count):
        seq = offset - 1 if duplicate_every and offset % duplicate_every == 0 else offset
        messages.append(trade(trade_id=f"t{seq}", source_sequence=seq + 1))
    return to_arrow_batch(raw_batch(messages, start=start))


def writer(settings, **kwargs):
    return IcebergWriter(open_catalog(settings), settings.namespace, **kwargs)


def test_a_restarted_writer_counts_and_writes_only_above_the_seam(settings):
    first = writer(settings)
    first.write(arrow_batch(0, 10))
    first.close()
    second = writer(settings)
    assert second.seams[TRADES] == {"market.trades/0": 10}
    second.write(arrow_batch(5, 10))  # 5..14: half of it already committed
    second.close()
    table = second.tables[TRADES]
    offsets = sorted(read_table(table, ["source_offset"])["source_offset"].to_pylist())
    assert offsets == list(range(15))
    assert summed_property(table, "k2.messages") == {"market.trades/0": 15}
    assert committed_offsets(table) == {"market.trades/0": 15}


def test_duplicates_are_counted_once_across_a_restart(settings):
    first = writer(settings)
    first.write(arrow_batch(0, 10, duplicate_every=4))  # offsets 4 and 8 repeat their predecessor
    first.close()
    second = writer(settings)
    second.write(arrow_batch(6, 10, duplicate_every=4))  # 8 counted already; 12 is new
    second.close()
    table = second.tables[TRADES]
    assert summed_property(table, "k2.duplicates") == {"market.trades/0": 3}
    assert read_table(table, ["source_offset"]).num_rows + 3 == 16


def test_the_seam_survives_a_snapshot_without_offsets(settings):
    w = writer(settings)
    w.write(arrow_batch(0, 3))
    w.close()
    table = w.tables[TRADES]
    table.append(pa.Table.from_batches([], schema=table.schema().as_arrow()))  # e.g. a maintenance snapshot
    assert committed_offsets(table.refresh()) == {"market.trades/0": 3}


def test_idle_tables_record_the_seam_when_closing(settings):
    w = writer(settings, seam_heartbeat_seconds=3600)
    w.write(arrow_batch(0, 4))
    w.close()
    # no dead letters or gaps were written, yet every table knows how far the partition is covered
    for table in w.tables.values():
        assert committed_offsets(table) == {"market.trades/0": 4}
    assert resume_offsets(w.tables) == {"market.trades/0": 4}


def test_resume_takes_the_lowest_seam(settings):
    w = writer(settings, seam_heartbeat_seconds=3600, commit_interval_seconds=3600)
    w.write(arrow_batch(0, 4))
    w.commit(side_tables=False)  # only the data table moves
    assert resume_offsets(w.tables) == {"market.trades/0": 0}
    w.close()


def _held_writer(settings, gate, crash: bool):
    """A writer whose committer waits for `gate`, then commits (or dies, like a process killed mid-commit)."""
    w = writer(settings, commit_interval_seconds=3600)
    commit_tables = w._commit_tables

    def held(jobs):
        gate.wait(10)
        if crash:
            raise RuntimeError("killed before the commit")
        commit_tables(jobs)

    w._commit_tables = held
    return w


def test_a_full_buffer_grows_while_the_committer_is_busy_and_lands_as_one_commit(settings):
    gate = threading.Event()
    w = _held_writer(settings, gate, crash=False)
    w.commit_max_rows = 10
    try:
        w.write(arrow_batch(0, 10))  # a writer's first rows are handed over at once; the committer holds them
        w.write(arrow_batch(10, 10))  # full, but the committer is busy: buffered, the flow's thread does not wait
        assert w._buffered_rows == 10 and not gate.is_set()
    finally:
        gate.set()  # a failed check never leaves the committer held
    w.write(arrow_batch(20, 5))  # 15 rows, past 1.25 times the size: handed over (after the commit before, if need be)
    w.close()
    table = w.tables[TRADES]
    added = [int(s.summary["added-records"]) for s in table.snapshots() if s.summary.get("added-records")]
    assert added == [10, 15]
    assert sorted(read_table(table, ["source_offset"])["source_offset"].to_pylist()) == list(range(25))


def test_an_epoch_ends_without_waiting_and_its_state_commits_what_was_lost(settings):
    gate = threading.Event()
    first = _held_writer(settings, gate, crash=True)
    first.write(arrow_batch(0, 10, duplicate_every=4))  # a writer's first rows are handed over at once, unwaited
    state = first.pending_state()
    assert state is not None
    gate.set()
    first._committer.shutdown(wait=True)
    second = writer(settings)
    assert second.seams[TRADES] == {}
    second.recover(pickle.loads(pickle.dumps(state)))  # what Bytewax stores, and gives back on resume
    second.write(arrow_batch(5, 10))  # the source resumes after the epoch; what it re-sends is filtered
    second.close()
    table = second.tables[TRADES]
    assert sorted(read_table(table, ["source_offset"])["source_offset"].to_pylist()) == [
        o for o in range(15) if o not in (4, 8)
    ]
    assert summed_property(table, "k2.messages") == {"market.trades/0": 15}
    assert summed_property(table, "k2.duplicates") == {"market.trades/0": 2}


def test_a_recovered_state_never_commits_twice(settings):
    gate = threading.Event()
    first = _held_writer(settings, gate, crash=False)
    first.write(arrow_batch(0, 10))  # handed over at once, unwaited
    state = first.pending_state()
    gate.set()
    first.close()  # the commit did land before the "crash"
    assert first.pending_state() is None
    second = writer(settings)
    second.recover(state)
    second.close()
    table = second.tables[TRADES]
    assert sorted(read_table(table, ["source_offset"])["source_offset"].to_pylist()) == list(range(10))
    assert summed_property(table, "k2.messages") == {"market.trades/0": 10}


def test_no_commit_runs_after_a_failed_one(settings, monkeypatch):
    monkeypatch.setattr("k2.storage.writer.MAX_PENDING_COMMITS", 2)
    gate = threading.Event()
    w = _held_writer(settings, gate, crash=True)
    w.write(arrow_batch(0, 5))
    w.commit(wait=False)
    w.write(arrow_batch(5, 5))
    w.commit(wait=False)  # queued behind the failing one
    gate.set()
    with pytest.raises(RuntimeError):
        w.commit()
    w._committer.shutdown(wait=True)
    assert committed_offsets(w.tables[TRADES].refresh()) == {}


def _batch_with_dead_letter(start: int, count: int):
    messages = [trade(trade_id=f"t{o}", source_sequence=o + 1) for o in range(start, start + count)]
    messages[1] = b"garbage"
    return to_arrow_batch(raw_batch(messages, start=start))


@pytest.mark.parametrize("side_committed_later", [False, True])
def test_side_rows_ride_in_the_epoch_state_and_land_once(settings, side_committed_later):
    gate = threading.Event()
    first = _held_writer(settings, gate, crash=not side_committed_later)
    first.write(_batch_with_dead_letter(0, 6))
    state = first.end_epoch()  # hands the trades over; the dead letter stays buffered (side tables not due)
    assert state is not None and first._buffers[DEAD_LETTERS]
    gate.set()
    if side_committed_later:
        first.close()  # the side table commit lands before the "crash"
    else:
        first._committer.shutdown(wait=True)
    second = writer(settings)
    # Pickled only now, after the first writer went on (Bytewax pickles when it stores): still the epoch's state.
    second.recover(pickle.loads(pickle.dumps(state)))
    second.close()
    dead = read_table(second.tables[DEAD_LETTERS], ["source_offset"])["source_offset"].to_pylist()
    trades = read_table(second.tables[TRADES], ["source_offset"])["source_offset"].to_pylist()
    assert dead == [1]
    assert sorted(trades) == [0, 2, 3, 4, 5]
    assert committed_offsets(second.tables[DEAD_LETTERS]) == {"market.trades/0": 6}


def test_a_resend_below_the_data_seam_still_lands_its_dead_letters(settings):
    """The crash the kill test saw: trades committed up to 6 while their dead letter was only buffered (side tables
    lag), then the process died and resumed from an older recovery state; the re-sent batch lies wholly below the
    trades' seam, yet its dead letter is in no table and must land now."""
    first = writer(settings, commit_interval_seconds=3600)
    first.write(_batch_with_dead_letter(0, 6))
    first.commit(side_tables=False)  # trades reach 6; the dead letter at offset 1 stays buffered
    first._committer.shutdown(wait=True)  # killed: the buffer is gone
    second = writer(settings)
    assert second.seams[TRADES] == {"market.trades/0": 6} and second.seams[DEAD_LETTERS] == {}
    second.write(_batch_with_dead_letter(0, 6))
    second.close()
    dead = read_table(second.tables[DEAD_LETTERS], ["source_offset"])["source_offset"].to_pylist()
    trades = read_table(second.tables[TRADES], ["source_offset"])["source_offset"].to_pylist()
    assert dead == [1]
    assert sorted(trades) == [0, 2, 3, 4, 5]
    assert summed_property(second.tables[TRADES], "k2.messages") == {"market.trades/0": 6}


class _DeadLetterTopic:
    """A DLQ topic that records, at each confirmation, what was sent so far and what the trades table held then;
    `fail` makes every confirmation fail, as an undeliverable dead letter does."""

    def __init__(self, settings, fail: bool = False):
        self.settings, self.fail = settings, fail
        self.sent: list[int] = []
        self.confirmed: list[tuple[list[int], list[int]]] = []  # (offsets sent, trades' committed offsets)

    def send(self, dead_letters) -> None:
        self.sent += [dead.source_offset for dead in dead_letters]

    def confirm(self) -> None:
        trades = open_catalog(self.settings).load_table((self.settings.namespace, TRADES))
        committed = [] if trades.current_snapshot() is None else read_table(trades, ["source_offset"])
        self.confirmed.append((list(self.sent), sorted(committed["source_offset"].to_pylist()) if committed else []))
        if self.fail:
            raise DeliveryError("1 undelivered, 0 failed: []")


def _committer(settings, topic, **kwargs):
    return IcebergSink(lambda: writer(settings, **kwargs), dead_letters=topic).build_part("iceberg", "iceberg", None)


def test_dead_letters_are_confirmed_before_the_commit_that_passes_them(settings):
    topic = _DeadLetterTopic(settings)
    committer = _committer(settings, topic, commit_max_rows=3)  # the batch's rows start a commit at once
    committer.write_batch([_batch_with_dead_letter(0, 6)])
    committer.close()
    assert topic.sent == [1]
    sent, committed = topic.confirmed[0]
    assert sent == [1] and committed == []  # confirmed before any row of the batch was committed
    assert sorted(read_table(committer.writer.tables[TRADES], ["source_offset"])["source_offset"].to_pylist()) == [
        0,
        2,
        3,
        4,
        5,
    ]


def test_an_epoch_state_is_taken_only_once_its_dead_letters_are_confirmed(settings):
    topic = _DeadLetterTopic(settings)
    committer = _committer(settings, topic, commit_interval_seconds=3600)
    committer.write_batch([_batch_with_dead_letter(0, 6)])  # a writer's first rows commit at once
    committer.write_batch([_batch_with_dead_letter(6, 6)])  # these wait for the epoch's end
    assert topic.sent == [1, 7] and [sent for sent, _ in topic.confirmed] == [[1]]
    state = committer.snapshot()
    assert topic.confirmed[-1][0] == [1, 7] and state is not None
    committer.close()


def test_a_dead_letter_not_delivered_stops_every_commit(settings):
    topic = _DeadLetterTopic(settings, fail=True)
    committer = _committer(settings, topic, commit_max_rows=3)
    with pytest.raises(DeliveryError):
        committer.write_batch([_batch_with_dead_letter(0, 6)])
    assert committer.writer.tables[TRADES].refresh().current_snapshot() is None  # nothing committed past it


def test_a_resent_batch_sends_only_the_dead_letters_above_their_seam(settings):
    first = _committer(settings, _DeadLetterTopic(settings))
    first.write_batch([_batch_with_dead_letter(0, 6)])
    first.close()  # the dead letter at offset 1 is committed
    topic = _DeadLetterTopic(settings)
    again = _committer(settings, topic)
    again.write_batch([_batch_with_dead_letter(0, 6), _batch_with_dead_letter(6, 6)])
    again.close()
    assert topic.sent == [7]
