"""The commit circuit breaker: its states, and the writer retrying real failed commits until they land once."""

import sqlite3
import threading

import pytest
from prometheus_client import REGISTRY

from k2.ops.breaker import BreakerGaveUp, BreakerState, CircuitBreaker
from k2.ops.config import load_settings
from k2.storage.catalog import DEAD_LETTERS, QUOTES, SEQUENCE_GAPS, TRADES, open_catalog, read_table
from k2.storage.seams import committed_offsets, summed_property
from k2.storage.writer import IcebergWriter
from tests.fixtures.clock import FakeClock
from tests.unit.test_sink import arrow_batch

pytestmark = pytest.mark.unit


def failing(times: int, exc: Exception | None = None):
    calls = {"n": 0}

    def action():
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc or OSError(f"failure {calls['n']}")
        return "done"

    return action, calls


def test_retries_with_backoff_opens_after_the_threshold_and_closes_on_success():
    time = FakeClock()
    states: list[BreakerState] = []
    breaker = CircuitBreaker(
        "b",
        failure_threshold=3,
        initial_backoff=0.5,
        max_backoff=4.0,
        clock=time,
        sleep=time.sleep,
        on_state=lambda _, s: states.append(s),
    )
    action, calls = failing(6)
    assert breaker.run(action) == "done"
    assert calls["n"] == 7
    # two short retries, then open: doubling cool-downs, capped at max_backoff
    assert time.sleeps == [0.5, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert states[0] is BreakerState.OPEN and states[-1] is BreakerState.CLOSED
    assert BreakerState.HALF_OPEN in states  # every probe after a cool-down is half-open
    assert breaker.opened == 1 and breaker.total_failures == 6 and breaker.consecutive_failures == 0


def test_a_failed_probe_reopens_without_closing():
    time = FakeClock()
    states: list[BreakerState] = []
    breaker = CircuitBreaker(
        "b", failure_threshold=1, clock=time, sleep=time.sleep, on_state=lambda _, s: states.append(s)
    )
    action, _ = failing(3)
    breaker.run(action)
    assert states == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


def test_gives_up_only_when_told_to():
    time = FakeClock()
    breaker = CircuitBreaker("b", give_up_seconds=10, max_backoff=4, clock=time, sleep=time.sleep)
    action, calls = failing(10**6)
    with pytest.raises(BreakerGaveUp, match="still failing"):
        breaker.run(action)
    assert 10 <= time.now <= 14 and calls["n"] > 3


def test_a_long_outage_keeps_waiting_at_the_cap():
    # 2,000 failures in a row (a catalog down for hours): the doubling must stay capped, not overflow a float.
    time = FakeClock()
    breaker = CircuitBreaker("b", failure_threshold=2, max_backoff=5, clock=time, sleep=time.sleep)
    action, calls = failing(2_000)
    assert breaker.run(action) == "done"
    assert calls["n"] == 2_001 and time.sleeps[-1] == 5


def test_stop_ends_a_wait_at_once():
    breaker = CircuitBreaker("b", initial_backoff=60)
    action, _ = failing(10**6)
    threading.Timer(0.2, breaker.stop).start()
    with pytest.raises(BreakerGaveUp, match="stopped"):
        breaker.run(action)


def test_work_found_done_before_a_retry_is_not_redone():
    time = FakeClock()
    breaker = CircuitBreaker("b", clock=time, sleep=time.sleep)
    action, calls = failing(1)
    assert breaker.run(action, before_retry=lambda: "landed") == "landed"
    assert calls["n"] == 1 and breaker.state is BreakerState.CLOSED


def _failed_commits() -> float:
    return sum(
        REGISTRY.get_sample_value("k2_iceberg_commits_total", {"table": table, "outcome": "failed"}) or 0.0
        for table in (TRADES, QUOTES, DEAD_LETTERS, SEQUENCE_GAPS)
    )


def test_a_locked_catalog_stalls_the_commit_which_lands_once_when_released(tmp_path):
    # A real outage: another process holds SQLite's write lock on the catalog; pyiceberg's commits fail with
    # "database is locked" (after the 0.1 s busy timeout set in the URI) until the lock goes.
    data_dir = tmp_path / "k2"
    settings = load_settings({}, data_dir=str(data_dir), catalog_uri=f"sqlite:///{data_dir / 'catalog.db'}?timeout=0.1")
    opened = threading.Event()
    breaker = CircuitBreaker(
        "test_lock",
        failure_threshold=2,
        initial_backoff=0.05,
        max_backoff=0.2,
        on_state=lambda _, state: state is BreakerState.OPEN and opened.set(),
    )
    writer = IcebergWriter(open_catalog(settings), settings.namespace, breaker=breaker)
    failed_before = _failed_commits()
    lock = sqlite3.connect(data_dir / "catalog.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    writer.write(arrow_batch(0, 20, duplicate_every=7))  # a writer's first rows are handed over at once
    assert writer._inflight  # the committer thread now retries; the flow's next commit would wait for it
    assert opened.wait(60), "the breaker never opened while the catalog was locked"
    assert writer.breaker.state in (BreakerState.OPEN, BreakerState.HALF_OPEN)
    lock.execute("COMMIT")  # the outage ends
    writer.close()
    assert writer.breaker.state is BreakerState.CLOSED
    assert _failed_commits() - failed_before >= 2
    table = writer.tables[TRADES]
    offsets = sorted(read_table(table, ["source_offset"])["source_offset"].to_pylist())
    assert offsets == [o for o in range(20) if o not in (7, 14)]  # every row once; duplicates counted, not written
    assert summed_property(table, "k2.messages") == {"market.trades/0": 20}
    assert committed_offsets(table) == {"market.trades/0": 20}


def test_a_concurrent_writer_does_not_lose_or_repeat_rows(settings):
    # Maintenance or another process commits in between: pyiceberg retries the conflict on a refreshed table.
    writer = IcebergWriter(open_catalog(settings), settings.namespace)
    writer.write(arrow_batch(0, 5))
    writer.commit()
    other = IcebergWriter(open_catalog(settings), settings.namespace)
    other.write(arrow_batch(100, 5))
    other.close()  # `writer`'s view of the table is now stale
    writer.write(arrow_batch(5, 5))
    writer.close()
    rows = read_table(writer.tables[TRADES], ["source_offset"])["source_offset"].to_pylist()
    assert sorted(rows) == [*range(10), *range(100, 105)]


def test_a_commit_whose_reply_was_lost_is_not_written_again(settings, monkeypatch):
    writer = IcebergWriter(open_catalog(settings), settings.namespace)
    catalog = writer.tables[TRADES].catalog
    real_commit = catalog.commit_table
    lost = {"n": 0}

    def commit_then_lose_the_reply(*args, **kwargs):
        response = real_commit(*args, **kwargs)
        if lost["n"] == 0:
            lost["n"] += 1
            raise ConnectionError("reply lost after the catalog took the commit")
        return response

    monkeypatch.setattr(catalog, "commit_table", commit_then_lose_the_reply)
    writer.write(arrow_batch(0, 10))
    writer.close()
    table = writer.tables[TRADES]
    assert lost["n"] == 1
    assert sorted(read_table(table, ["source_offset"])["source_offset"].to_pylist()) == list(range(10))
    assert summed_property(table, "k2.messages") == {"market.trades/0": 10}
