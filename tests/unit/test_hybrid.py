"""The tail follower's bookkeeping without a broker: which buffered rows a realtime query gets for its seam."""

from __future__ import annotations

from k2.ingest.pipeline import Pipeline
from k2.query.hybrid import PartitionPipeline, TailFollower, TailPart
from tests.fixtures.market import T0, raw_batch, trade

KEY = "market.trades/0"


def follower_with_rows(settings, count: int) -> TailFollower:
    follower = TailFollower(settings, dict)
    follower._partitions = [("market.trades", 0)]
    follower._pipelines = {KEY: PartitionPipeline(Pipeline(settings), "market.trades")}
    follower.high_watermarks = lambda table: {KEY: count}  # the follower has read everything there is
    messages = [
        trade(trade_id=str(i), source_sequence=i + 1, timestamp=T0 + i, symbol="AB"[i % 2]) for i in range(count)
    ]
    messages.append(messages[4])  # a duplicate: the flow's own dedupe drops it here too
    rows = follower._pipelines[KEY].process(raw_batch(messages))
    follower._buffers[KEY], follower._position[KEY], follower._buffered = [TailPart(rows)], count + 1, rows.num_rows
    return follower


def test_tail_rows_start_at_the_query_seam(settings):
    follower = follower_with_rows(settings, 10)
    page = follower.tail("trades", {KEY: 3})
    assert sorted(page.rows.column("source_offset").to_pylist()) == [3, 4, 5, 6, 7, 8, 9]
    assert page.offsets == {KEY: (3, 11)} and page.complete
    only_b = follower.tail("trades", {KEY: 3}, symbols=["B"], start=T0 + 4, end=T0 + 9)
    assert only_b.rows.column("source_offset").to_pylist() == [5, 7]
    both = follower.tail("trades", {KEY: 0}, symbols=["B", "A", "B", "C"])  # repeats and unknown symbols
    assert sorted(both.rows.column("source_offset").to_pylist()) == list(range(10))
    assert follower.tail("quotes", {KEY: 3}).rows.num_rows == 0


def test_a_request_planned_before_the_last_commit_still_finds_its_rows(settings):
    follower = follower_with_rows(settings, 10)
    assert follower.tail("trades", {KEY: 3}).rows.num_rows == 7
    assert follower.tail("trades", {KEY: 6}).rows.num_rows == 4  # a commit moved the seam
    late = follower.tail("trades", {KEY: 3})  # planned on the snapshot before it
    assert late.rows.num_rows == 7 and late.complete
    follower.tail("trades", {KEY: 8})  # another commit: rows below 6 are dropped now
    stale = follower.tail("trades", {KEY: 3})
    assert not stale.complete and sorted(stale.rows.column("source_offset").to_pylist()) == [6, 7, 8, 9]
