"""Ticks, the empty batches an idle source sends: every step passes them on and counts nothing, no seam moves, and
a writer that gets only ticks still commits its dead letters (and heartbeat seams) once they are due."""

from prometheus_client import REGISTRY

from k2.ingest.columnar import ArrowBatch, to_arrow
from k2.ingest.dedupe import Deduper
from k2.ingest.sequence import SequenceTracker
from k2.ingest.validate import Rules, validate_batch
from k2.model.batch import RawBatch, tick
from k2.ops.metrics import record_batch
from k2.storage.catalog import DEAD_LETTERS, QUOTES, SEQUENCE_GAPS, TRADES, open_catalog, read_table
from k2.storage.seams import committed_offsets, summed_property
from k2.storage.writer import IcebergWriter
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import raw_batch, to_arrow_batch, trade

RULES = Rules(946_684_800_000_000, 4_102_444_800_000_000)
TRADES_0 = "market.trades/0"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def trades(start: int, count: int, invalid_at: int | None = None) -> list:
    messages = [trade(trade_id=f"t{o}", source_sequence=o + 1) for o in range(start, start + count)]
    if invalid_at is not None:
        messages[invalid_at - start] = b"{oops"
    return messages


def batches_counted(kind: str) -> float:
    return REGISTRY.get_sample_value("k2_ingest_batch_messages_count", {"kind": kind}) or 0.0


def test_a_tick_passes_every_step_unchanged_and_counts_nothing():
    tracker, deduper = SequenceTracker(), Deduper(10**12, 1_000)
    seen = validate_batch(raw_batch([*trades(0, 3), trade(trade_id="t9", source_sequence=9)]), "trade", RULES)
    deduper.dedupe_batch(tracker.check_batch(seen))  # some state (and an open gap) to keep
    state = (tracker.to_state(), deduper.recent.to_state())
    counted = batches_counted("trade")

    batch = deduper.dedupe_batch(tracker.check_batch(validate_batch(tick("market.trades", 0), "trade", RULES)))
    record_batch(batch)

    assert (batch.messages_in, batch.records, batch.dead_letters, batch.duplicates) == (0, [], [], 0)
    assert batch.sequence_events == [] and batch.classes == []
    assert (tracker.to_state(), deduper.recent.to_state()) == state
    assert batches_counted("trade") == counted  # not even a batch of size 0
    arrow = to_arrow(batch)
    assert arrow.tables == {} and arrow.source_offsets == [] and arrow.duplicate_offsets == []


def test_ticks_in_the_flow_change_no_count_and_no_seam(settings):
    landed = run_ingest(
        settings,
        [
            tick("market.trades", 0),
            raw_batch(trades(0, 3, invalid_at=1)),
            tick("market.trades", 0),
            tick("market.quotes", 1),  # a partition that never had a message: no seam for it
            raw_batch(trades(3, 3), start=3),
            tick("market.trades", 0),
        ],
    )
    assert landed.messages == {TRADES_0: 6}
    assert landed.tables[TRADES].num_rows + landed.tables[DEAD_LETTERS].num_rows == 6
    assert [d["source_offset"] for d in landed.rows(DEAD_LETTERS)] == [1]
    for name in (TRADES, QUOTES, DEAD_LETTERS, SEQUENCE_GAPS):
        assert landed.seams[name] == {TRADES_0: 6}, name


def arrow(raw: RawBatch) -> ArrowBatch:
    return to_arrow_batch(raw)


def settle(writer: IcebergWriter) -> None:
    """Wait for the commits handed over so far: the committer runs them in order on its one thread."""
    writer._committer.submit(lambda: None).result()


def test_an_idle_writer_commits_its_side_tables_and_heartbeat_seams_on_ticks(settings):
    clock = Clock()
    writer = IcebergWriter(
        open_catalog(settings),
        settings.namespace,
        commit_interval_seconds=1.0,
        seam_heartbeat_seconds=30.0,
        clock=clock,
    )
    writer.write(arrow(raw_batch(trades(0, 6, invalid_at=1))))
    idle = arrow(tick("market.trades", 0))

    def ticks_until(seconds: float) -> None:
        while clock.now < seconds:
            clock.now += 1.0
            writer.write(idle)
        settle(writer)

    ticks_until(9)  # the trades commit at the first interval; the side tables are not due yet
    assert read_table(writer.tables[TRADES]).num_rows == 5
    assert read_table(writer.tables[DEAD_LETTERS]).num_rows == read_table(writer.tables[SEQUENCE_GAPS]).num_rows == 0

    ticks_until(10)  # SIDE_TABLE_INTERVALS commit intervals after the writer started
    dead = read_table(writer.tables[DEAD_LETTERS], ["source_offset"])["source_offset"].to_pylist()
    assert dead == [1]
    assert committed_offsets(writer.tables[DEAD_LETTERS].refresh()) == {TRADES_0: 6}
    (gap,) = read_table(writer.tables[SEQUENCE_GAPS]).to_pylist()  # the invalid message left sequence 2 missing
    assert (gap["expected_sequence"], gap["received_sequence"]) == (2, 3)
    assert committed_offsets(writer.tables[QUOTES].refresh()) == {}  # no rows for it, heartbeat not due
    commits = len(writer.commits)

    ticks_until(29)
    assert len(writer.commits) == commits  # ticks with nothing due commit nothing

    ticks_until(30)  # the heartbeat: the tables without rows record how far the partition is covered
    for name in (TRADES, QUOTES, DEAD_LETTERS, SEQUENCE_GAPS):
        assert committed_offsets(writer.tables[name].refresh()) == {TRADES_0: 6}, name
    assert summed_property(writer.tables[TRADES], "k2.messages") == {TRADES_0: 6}  # counted once
    writer.close()
