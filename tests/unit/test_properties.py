"""Property tests: for any interleaving of valid, malformed, duplicated and reordered messages,
conservation holds and the rows in Iceberg are exactly the unique valid messages."""

import tempfile

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from k2.ingest.dedupe import Deduper
from k2.ingest.sequence import SequenceTracker
from k2.ingest.validate import Rules, validate_batch
from k2.ops.config import load_settings
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import T0, raw_batch, trade, wire

RULES = Rules(946_684_800_000_000, 4_102_444_800_000_000)
MALFORMED = [b"", b"{", b"null", b'{"price": "1"}', wire(trade(price="-1")), wire(trade(side="HOLD"))]


@st.composite
def streams(draw):
    """A partition's arrival order: sequenced and unsequenced trades of two symbols, shuffled locally,
    with repeats and malformed messages mixed in. Returns (messages, expected natural keys)."""
    valid = []
    for symbol in ("AAA", "BBB"):
        count = draw(st.integers(0, 25))
        # every valid message has a later timestamp than its predecessor, so a late arrival is never a reset
        valid += [
            trade(
                symbol=symbol,
                trade_id=f"{symbol}{i}",
                source_sequence=i,
                timestamp=T0 + i * 1000,
                price=str(draw(st.decimals("0.00000001", "99999", places=8))),
            )
            for i in range(1, count + 1)
        ]
        unsequenced = draw(st.integers(0, 5))
        valid += [
            trade(symbol=symbol, trade_id=f"{symbol}-u{i}", source_sequence=None, timestamp=T0 + i)
            for i in range(unsequenced)
        ]
    expected = {(m["symbol"], m["source_sequence"] or m["trade_id"]) for m in valid}
    arrivals = [wire(m) for m in valid]
    arrivals += [wire(m) for m in draw(st.lists(st.sampled_from(valid), max_size=10))] if valid else []
    arrivals += draw(st.lists(st.sampled_from(MALFORMED), max_size=5))
    order = draw(st.permutations(range(len(arrivals))))
    return [arrivals[i] for i in order], expected


def plain_pipeline(messages, batch_size):
    tracker, deduper = SequenceTracker(), Deduper(horizon_us=10**12, max_keys=10**6)
    kept, dead, dups = [], 0, 0
    for start in range(0, len(messages), batch_size):
        batch = validate_batch(raw_batch(messages[start : start + batch_size], start=start), "trade", RULES)
        batch = deduper.dedupe_batch(tracker.check_batch(batch))
        kept += batch.records
        dead += len(batch.dead_letters)
        dups += batch.duplicates
    return kept, dead, dups


@given(streams(), st.integers(1, 17))
@hsettings(max_examples=300, deadline=None)
def test_plain_pipeline_keeps_each_unique_valid_message_once(stream, batch_size):
    messages, expected = stream
    kept, dead, dups = plain_pipeline(messages, batch_size)
    assert len(kept) + dead + dups == len(messages)
    keys = [(r.symbol, r.source_sequence or r.trade_id) for r in kept]
    assert len(keys) == len(set(keys))
    assert set(keys) == expected


@given(streams(), st.integers(1, 17))
@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_iceberg_holds_exactly_the_unique_valid_messages(stream, batch_size):
    messages, expected = stream
    if not messages:
        return
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({}, data_dir=tmp)
        batches = [raw_batch(messages[s : s + batch_size], start=s) for s in range(0, len(messages), batch_size)]
        landed = run_ingest(settings, batches, epoch=0.01)
    rows = landed.rows("trades")
    keys = [(r["symbol"], r["source_sequence"] or r["trade_id"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert set(keys) == expected
    assert len(rows) + len(landed.rows("dead_letters")) + sum(landed.duplicates.values()) == len(messages)
    assert landed.messages == {"market.trades/0": len(messages)}
