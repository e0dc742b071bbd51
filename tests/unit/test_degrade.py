"""Degradation levels: driven by signals, with hysteresis; they slow the flow down and never drop a message."""

import pytest
from prometheus_client import REGISTRY

from k2.ops.degrade import DegradationManager, Level, Signals, Thresholds, level_for
from k2.ops.memory import rss_bytes
from k2.storage.catalog import TRADES, open_catalog
from k2.storage.seams import committed_offsets
from k2.storage.writer import IcebergWriter
from tests.unit.test_sink import arrow_batch

pytestmark = pytest.mark.unit

CALM = Signals(0, 0, 0.0, 100 << 20)
THRESHOLDS = Thresholds.for_memory_limit(1000 << 20, cool_down_seconds=10)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def manager(clock: Clock | None = None) -> DegradationManager:
    return DegradationManager(THRESHOLDS, low_priority_topics=["market.quotes"], clock=clock or Clock())


def test_each_signal_asks_for_its_level():
    assert level_for(CALM, THRESHOLDS) is Level.NORMAL
    assert level_for(Signals(600_000, 0, 0.0, 0), THRESHOLDS) is Level.ELEVATED  # total lag
    assert level_for(Signals(10**9, 0, 0.0, 0), THRESHOLDS) is Level.ELEVATED  # quotes' lag alone: never HIGH
    assert level_for(Signals(2_500_000, 2_500_000, 0.0, 0), THRESHOLDS) is Level.HIGH  # trades behind
    assert level_for(Signals(0, 0, 6.0, 0), THRESHOLDS) is Level.HIGH
    assert level_for(Signals(0, 0, 20.0, 0), THRESHOLDS) is Level.CRITICAL
    assert level_for(Signals(0, 0, 0.0, 850 << 20), THRESHOLDS) is Level.HIGH  # 85 % of the memory budget
    assert level_for(Signals(0, 0, 0.0, 990 << 20), THRESHOLDS) is Level.CRITICAL


def test_up_at_once_down_one_level_per_calm_period_and_no_flapping():
    clock = Clock()
    m = manager(clock)
    before = REGISTRY.get_sample_value("k2_degradation_level_changes_total", {"direction": "up"}) or 0
    assert m.update(Signals(0, 0, 20.0, 0)) is Level.CRITICAL  # straight up
    assert REGISTRY.get_sample_value("k2_degradation_level") == 3
    assert REGISTRY.get_sample_value("k2_degradation_level_changes_total", {"direction": "up"}) == before + 1
    # Just under the CRITICAL threshold but above its exit band (80 %): stays, however long
    for _ in range(5):
        clock.now += 30
        assert m.update(Signals(0, 0, 14.0, 0)) is Level.CRITICAL
    spike = Signals(0, 0, 5.5, 0)
    steps = [  # (seconds later, signals, level): calm steps down one level per cool-down period, not before
        (1, CALM, Level.CRITICAL),
        (9.5, CALM, Level.CRITICAL),
        (0.5, CALM, Level.HIGH),
        (5, CALM, Level.HIGH),
        (0, spike, Level.HIGH),  # a spike in between restarts the calm period
        (6, CALM, Level.HIGH),
        (10, CALM, Level.ELEVATED),
        (10, CALM, Level.NORMAL),
    ]
    for seconds, signals, level in steps:
        clock.now += seconds
        assert m.update(signals) is level, (clock.now, signals)
    assert [(a, b) for a, b, _ in m.changes] == [
        (Level.NORMAL, Level.CRITICAL),
        (Level.CRITICAL, Level.HIGH),
        (Level.HIGH, Level.ELEVATED),
        (Level.ELEVATED, Level.NORMAL),
    ]


def test_levels_pause_quotes_before_trades_and_stretch_batches_and_commits():
    m = manager()
    assert (m.batch_factor, m.commit_interval_factor) == (1, 1.0)
    assert not m.paused("market.quotes")
    m.update(Signals(600_000, 0, 0.0, 0))
    assert (m.level, m.batch_factor, m.commit_interval_factor) == (Level.ELEVATED, 2, 2.0)
    assert not m.paused("market.quotes")
    m.update(Signals(0, 0, 6.0, 0))
    assert m.level is Level.HIGH and m.paused("market.quotes") and not m.paused("market.trades")
    m.update(Signals(0, 0, 16.0, 0))
    assert m.level is Level.CRITICAL and m.paused("market.quotes") and m.paused("market.trades")


def test_commit_latency_is_the_slowest_recent_commit_and_fades_when_commits_stop():
    clock = Clock()
    m = manager(clock)
    m.observe_commit(0.2)
    m.observe_commit(7.0)
    clock.now += 5
    m.observe_commit(0.3)
    assert m.commit_seconds() == 7.0
    clock.now += THRESHOLDS.commit_window_seconds
    assert m.commit_seconds() == 0.3
    clock.now += THRESHOLDS.commit_window_seconds
    assert m.commit_seconds() == 0.0  # nothing committed lately (everything paused): no signal holds the level


def test_measures_this_process():
    signals = DegradationManager().measure()
    assert 10 << 20 < signals.rss_bytes == pytest.approx(rss_bytes(), rel=0.2)
    assert signals.lag_messages >= signals.priority_lag_messages >= 0


def test_maybe_update_samples_at_most_once_per_period():
    clock = Clock()
    calls = []
    m = DegradationManager(THRESHOLDS, sampler=lambda: calls.append(1) or CALM, clock=clock, sample_every_seconds=1)
    for _ in range(100):
        m.maybe_update()
    clock.now += 1
    m.maybe_update()
    assert len(calls) == 2


def test_under_pressure_an_epoch_end_still_commits_so_no_backlog_rides_in_the_state(settings):
    clock = Clock()
    m = manager(clock)
    m.update(Signals(600_000, 0, 0.0, 0))  # ELEVATED: commit interval x2
    w = IcebergWriter(
        open_catalog(settings), settings.namespace, commit_interval_seconds=1.0, degradation=m, clock=clock
    )
    w.write(arrow_batch(0, 10))  # a writer's first rows commit at once
    w.commit()
    clock.now += 1.5
    w.write(arrow_batch(10, 10))  # 1.5 s later: inside the stretched interval (2 s), no timed commit
    assert not w._inflight and len(w.commits) == 1
    state = w.end_epoch()  # the epoch ends: the trades are handed over all the same
    w.close()
    assert state is not None and [name for name, *_ in state.commits] == [TRADES]
    assert not state.buffered  # nothing of the data tables is left to ride in the next snapshots
    assert committed_offsets(w.tables[TRADES]) == {"market.trades/0": 20}


def test_the_stretched_interval_over_the_epoch_commits(settings):
    clock = Clock()
    m = manager(clock)
    m.update(Signals(600_000, 0, 0.0, 0))
    w = IcebergWriter(
        open_catalog(settings), settings.namespace, commit_interval_seconds=1.0, degradation=m, clock=clock
    )
    w.write(arrow_batch(0, 10))
    clock.now += 2.0
    w.end_epoch()
    w.close()
    assert w.commits[0].table == TRADES and w.commits[0].rows == 10
