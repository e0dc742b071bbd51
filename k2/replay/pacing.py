"""Spacing replayed messages by their event-time differences divided by a speed factor."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

from k2.replay.read import check_speed
from k2.replay.wire import Message

# --- pacing ----------------------------------------------------------------------------------------------------


class Pacer:
    """Keeps wall time between messages = event-time difference / speed, against the first message's times.

    `speed=None`: no waiting. The schedule is absolute (origin + offset), so a late message does not delay the
    ones after it, and sleeps never add up to drift. Clock and sleep are injectable for tests.
    """

    def __init__(
        self,
        speed: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.speed = check_speed(speed)
        self._clock, self._sleep = clock, sleep
        self._origin: tuple[float, int] | None = None

    def due(self, event_us: int) -> float:
        """The monotonic-clock time at which the message of `event_us` is due (the first one: now)."""
        if self._origin is None:
            self._origin = (self._clock(), event_us)
        wall, event = self._origin
        return wall + (event_us - event) / 1e6 / self.speed  # type: ignore[operator]

    def delay(self, event_us: int) -> float:
        """Seconds until `event_us` is due (<= 0: now); 0 without a speed."""
        return 0.0 if self.speed is None else self.due(event_us) - self._clock()

    def wait(self, event_us: int) -> None:
        if self.speed is None:
            return
        left = self.delay(event_us)
        if left > 0:
            self._sleep(left)


def paced(messages: Iterable[Message], pacer: Pacer, max_group: int = 10_000) -> Iterator[list[Message]]:
    """Groups of messages, each handed out when its first message is due; a group holds only messages already
    due (or all of them without a speed), so a consumer writing each group at once keeps the schedule."""
    group: list[Message] = []
    for message in messages:
        if pacer.speed is not None and pacer.delay(message.timestamp) > 0:
            if group:
                yield group
                group = []
            pacer.wait(message.timestamp)
        group.append(message)
        if len(group) >= max_group:
            yield group
            group = []
    if group:
        yield group
