"""A circuit breaker that waits instead of failing: for the Iceberg commits.

A commit that fails (catalog unreachable or locked, storage full, a conflicting writer) is retried, with the same
data, until it lands. The first failures retry after a short backoff; after `failure_threshold` in a row the breaker
opens and retries only after an exponentially growing cool-down (capped), one probe at a time (half-open). The
committer thread blocks meanwhile, so the flow stops handing it work and stops consuming: backpressure, with every
buffered message kept. A success closes the breaker. `give_up_seconds` bounds the wait for those who prefer the
process to exit (a restart resumes from the seams); by default the breaker waits as long as the outage lasts.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class BreakerGaveUp(RuntimeError):
    """The action kept failing for longer than the breaker was allowed to wait."""


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        initial_backoff: float = 0.2,
        max_backoff: float = 30.0,
        give_up_seconds: float | None = None,
        on_state: Callable[[str, BreakerState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ):
        self.name = name
        self.failure_threshold = failure_threshold
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.give_up_seconds = give_up_seconds
        self._on_state = on_state
        self._clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait  # an interruptible sleep: `stop()` ends a wait at once
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.total_failures = 0
        self.opened = 0  # how many times it opened

    def run(self, action: Callable[[], T], *, before_retry: Callable[[], T | None] | None = None) -> T:
        """Run `action` until it succeeds; between attempts, `before_retry` may find the work already done
        (a commit that failed on the way back but landed) and return its result instead of None."""
        first_failure: float | None = None
        while True:
            try:
                result = action()
            except Exception as exc:
                now = self._clock()
                first_failure = now if first_failure is None else first_failure
                self._failed(exc)
                if self.give_up_seconds is not None and now - first_failure >= self.give_up_seconds:
                    raise BreakerGaveUp(f"{self.name}: still failing after {now - first_failure:.1f} s") from exc
                self._sleep(self._backoff())
                if self._stop.is_set():
                    raise BreakerGaveUp(f"{self.name}: stopped while failing") from exc
                if self.state is BreakerState.OPEN:
                    self._set(BreakerState.HALF_OPEN)  # the cool-down is over: one probe
                if before_retry is not None:
                    try:
                        done = before_retry()
                    except Exception as check_error:
                        log.warning("%s: check before retry failed: %s", self.name, check_error)
                        continue
                    if done is not None:
                        self._succeeded()
                        return done
                continue
            self._succeeded()
            return result

    def stop(self) -> None:
        """End any wait now (shutdown): the running `run` raises `BreakerGaveUp`."""
        self._stop.set()

    def _backoff(self) -> float:
        if self.state is not BreakerState.OPEN:
            return self.initial_backoff
        # Doubles with every failure past the threshold, capped.
        excess = self.consecutive_failures - self.failure_threshold
        # The exponent is capped: past ~1,000 failures (a long outage) 2**n no longer fits a float.
        return min(self.max_backoff, self.initial_backoff * 2 ** min(excess + 1, 32))

    def _failed(self, exc: Exception) -> None:
        self.consecutive_failures += 1
        self.total_failures += 1
        log.warning(
            "%s failed (%d in a row): %s",
            self.name,
            self.consecutive_failures,
            exc,
            extra={"breaker": self.name, "failures": self.consecutive_failures, "error": repr(exc)},
        )
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED and self.consecutive_failures >= self.failure_threshold
        ):
            if self.state is BreakerState.CLOSED:
                self.opened += 1
            self._set(BreakerState.OPEN)

    def _succeeded(self) -> None:
        if self.consecutive_failures:
            log.warning("%s recovered after %d failures", self.name, self.consecutive_failures)
        self.consecutive_failures = 0
        if self.state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def _set(self, state: BreakerState) -> None:
        if state is self.state:
            return
        log.warning("%s breaker %s -> %s", self.name, self.state.name, state.name, extra={"breaker": self.name})
        self.state = state
        if self._on_state is not None:
            self._on_state(self.name, state)
