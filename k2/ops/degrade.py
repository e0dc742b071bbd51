"""Degrade by slowing down, never by dropping: the flow's load levels, driven by measured signals.

Signals are this process's own: consumer lag (summed over the source partitions, and over the high-priority ones
alone), commit latency (the slowest Iceberg commit of the last `commit_window_seconds`) and resident memory (of
this process, not the machine). Each signal's thresholds
give the level it asks for; the manager takes the highest at once and steps down one level at a time, only after
every signal has stayed below `exit_ratio` of the current level's entry threshold for `cool_down_seconds`
(hysteresis: a signal hovering at a threshold does not make the level flap).

What each level does (see `Level`): bigger batches and longer commit intervals (fewer, larger commits amortise the
fixed cost of a commit; the interval spaces timed commits inside an epoch, while every epoch end still commits, so
no backlog rides in the recovery state), then low-priority topics paused (quotes before trades), then every topic
paused while the store catches up. Paused topics are simply not polled: Kafka keeps the messages and the flow reads
them later, so nothing is lost and ordering per partition holds.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

import msgspec

from k2.ops.config import Settings
from k2.ops.memory import rss_bytes
from k2.ops.metrics import CONSUMER_LAG, DEGRADATION_CHANGES, DEGRADATION_LEVEL

log = logging.getLogger(__name__)


class Level(enum.IntEnum):
    NORMAL = 0  # as configured
    ELEVATED = 1  # batches x2, commit interval x2
    HIGH = 2  # batches x4, commit interval x4, low-priority topics paused
    CRITICAL = 3  # commit interval x4, every topic paused until the store catches up


BATCH_FACTOR = {Level.NORMAL: 1, Level.ELEVATED: 2, Level.HIGH: 4, Level.CRITICAL: 4}
COMMIT_INTERVAL_FACTOR = {Level.NORMAL: 1.0, Level.ELEVATED: 2.0, Level.HIGH: 4.0, Level.CRITICAL: 4.0}


class Signals(msgspec.Struct, frozen=True):
    lag_messages: int  # every topic
    priority_lag_messages: int  # topics that are never paused first (trades)
    commit_seconds: float
    rss_bytes: int


class Thresholds(msgspec.Struct, frozen=True):
    """Entry thresholds per level (ELEVATED, HIGH, CRITICAL); None: that signal never asks for that level.

    Lag never asks for CRITICAL (pausing everything would only grow it), and only the high-priority topics' lag
    asks for HIGH (pausing quotes helps trades catch up; the quotes' own growing lag must not keep them paused).
    Memory and a struggling store ask for every level. A commit window with no commits reads as 0 s, so a level
    that paused everything does not keep itself up.
    """

    lag_messages: tuple[int | None, int | None, int | None] = (500_000, None, None)
    priority_lag_messages: tuple[int | None, int | None, int | None] = (None, 2_000_000, None)
    commit_seconds: tuple[float | None, float | None, float | None] = (2.0, 5.0, 15.0)
    rss_bytes: tuple[int | None, int | None, int | None] = (1536 << 20, 2048 << 20, 2560 << 20)
    exit_ratio: float = 0.8
    cool_down_seconds: float = 10.0
    commit_window_seconds: float = 30.0

    @classmethod
    def for_memory_limit(cls, limit_bytes: int, **overrides: object) -> Thresholds:
        """RSS thresholds at 60 / 80 / 95 % of a memory budget."""
        rss = (int(limit_bytes * 0.6), int(limit_bytes * 0.8), int(limit_bytes * 0.95))
        return msgspec.structs.replace(cls(), rss_bytes=rss, **overrides)


def level_for(signals: Signals, thresholds: Thresholds, scale: float = 1.0) -> Level:
    """The highest level any signal reaches (thresholds multiplied by `scale`: the exit band uses < 1)."""
    level = Level.NORMAL
    for value, entries in (
        (signals.lag_messages, thresholds.lag_messages),
        (signals.priority_lag_messages, thresholds.priority_lag_messages),
        (signals.commit_seconds, thresholds.commit_seconds),
        (signals.rss_bytes, thresholds.rss_bytes),
    ):
        for index, entry in enumerate(entries):
            if entry is not None and value >= entry * scale:
                level = max(level, Level(index + 1))
    return level


class DegradationManager:
    """The process's current level; sources and the sink read its factors, `maybe_update` moves it."""

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        *,
        low_priority_topics: Iterable[str] = (),
        sample_every_seconds: float = 1.0,
        sampler: Callable[[], Signals] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.thresholds = thresholds or Thresholds()
        self.low_priority_topics = frozenset(low_priority_topics)
        self.sample_every_seconds = sample_every_seconds
        self._sampler = sampler or self.measure
        self._clock = clock
        self._lock = threading.Lock()
        self._next_sample = 0.0
        self._calm_since: float | None = None
        self._commits: deque[tuple[float, float]] = deque()  # (when, seconds) of recent commits
        self.level = Level.NORMAL
        self.changes: list[tuple[Level, Level, Signals]] = []
        DEGRADATION_LEVEL.set(0)

    # Inputs
    def observe_commit(self, seconds: float) -> None:
        self._commits.append((self._clock(), seconds))  # from the committer thread: deque appends are atomic

    def commit_seconds(self) -> float:
        horizon = self._clock() - self.thresholds.commit_window_seconds
        while self._commits and self._commits[0][0] < horizon:
            self._commits.popleft()
        return max((seconds for _, seconds in self._commits), default=0.0)

    def measure(self) -> Signals:
        """This process's signals now: lag from the source partitions' gauges, RSS from /proc."""
        lag = priority_lag = 0
        for metric in CONSUMER_LAG.collect():
            for sample in metric.samples:
                lag += int(sample.value)
                if sample.labels.get("topic") not in self.low_priority_topics:
                    priority_lag += int(sample.value)
        return Signals(lag, priority_lag, self.commit_seconds(), rss_bytes())

    def maybe_update(self) -> Level:
        """Re-evaluate at most every `sample_every_seconds` (cheap to call from every batch)."""
        now = self._clock()
        if now < self._next_sample or not self._lock.acquire(blocking=False):
            return self.level
        try:
            self._next_sample = now + self.sample_every_seconds
            self.update(self._sampler(), now)
        finally:
            self._lock.release()
        return self.level

    def update(self, signals: Signals, now: float | None = None) -> Level:
        now = self._clock() if now is None else now
        wanted = level_for(signals, self.thresholds)
        if wanted > self.level:
            self._calm_since = None
            self._move(wanted, signals)
        elif self.level > Level.NORMAL and level_for(signals, self.thresholds, self.thresholds.exit_ratio) < self.level:
            # Below the exit band of the current level: step down once it has stayed there long enough.
            self._calm_since = now if self._calm_since is None else self._calm_since
            if now - self._calm_since >= self.thresholds.cool_down_seconds:
                self._calm_since = now  # the next step down needs its own calm period
                self._move(Level(self.level - 1), signals)
        else:
            self._calm_since = None
        return self.level

    # Effects
    @property
    def batch_factor(self) -> int:
        return BATCH_FACTOR[self.level]

    @property
    def commit_interval_factor(self) -> float:
        return COMMIT_INTERVAL_FACTOR[self.level]

    def paused(self, topic: str) -> bool:
        if self.level >= Level.CRITICAL:
            return True
        return self.level >= Level.HIGH and topic in self.low_priority_topics

    def _move(self, level: Level, signals: Signals) -> None:
        previous, self.level = self.level, level
        self.changes.append((previous, level, signals))
        DEGRADATION_LEVEL.set(int(level))
        DEGRADATION_CHANGES.labels("up" if level > previous else "down").inc()
        log.warning(
            "degradation level %s -> %s",
            previous.name,
            level.name,
            extra={
                "level": int(level),
                "previous_level": int(previous),
                "lag_messages": signals.lag_messages,
                "commit_seconds": round(signals.commit_seconds, 3),
                "rss_bytes": signals.rss_bytes,
            },
        )


def degradation_from_settings(settings: Settings) -> DegradationManager | None:
    """The flow's manager (None when `K2_DEGRADATION=false`)."""
    if not settings.degradation:
        return None
    low = [t.strip() for t in settings.low_priority_topics.split(",") if t.strip()] or [settings.quotes_topic]
    thresholds = Thresholds.for_memory_limit(
        settings.memory_limit_mb << 20, cool_down_seconds=settings.degrade_cool_down_seconds
    )
    return DegradationManager(thresholds, low_priority_topics=low)
