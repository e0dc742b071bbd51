"""Retrying an action that loses races: again after a jittered pause that doubles, up to a number of attempts.

For races that resolve themselves (processes creating the same catalog tables at once, a maintenance commit
beaten by the flow's). A component that is down is the circuit breaker's business (`k2.ops.breaker`), not this.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def retry(
    action: Callable[[], T],
    *,
    on: tuple[type[BaseException], ...],
    attempts: int,
    max_doublings: int = 30,
    before_retry: Callable[[int], object] | None = None,
) -> T:
    """`action()`, run again while it raises one of `on`, at most `attempts` times in all (the last failure
    propagates). The pause before retry n is 50 ms x 2^min(n, max_doublings) x a random factor in [1, 2)."""
    for attempt in range(attempts):
        try:
            return action()
        except on:
            if attempt == attempts - 1:
                raise
            if before_retry is not None:
                before_retry(attempt)
            time.sleep(0.05 * (1 + random.random()) * 2 ** min(attempt, max_doublings))
    raise ValueError("attempts must be at least 1")
