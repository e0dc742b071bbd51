"""A clean stop on SIGTERM or Ctrl-C: the sources end, the flow drains, and the sinks commit what they hold.

Bytewax, left alone, aborts on Ctrl-C without closing its sinks, and SIGTERM kills the process outright: rows and
dead letters still buffered then reach Iceberg only through a restart (from the recovery state or the seams). With
`install_stop_handlers`, the first signal only asks the sources to end (`stop_requested`): each partition raises
StopIteration at its next poll, Bytewax finishes the epoch, closes the sinks (the Iceberg writer's final commit, the
DLQ producer's flush) and the process exits 0. Stopping early like this loses nothing: Kafka keeps what was not
read, and a restart resumes where the committed seams (or the recovery state) say.

A second signal, or a drain that outlasts `K2_STOP_TIMEOUT_SECONDS` (a store that is down keeps the final commit
waiting), ends the process at once, as a crash would: still exact, only later.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)

_requested = threading.Event()


def stop_requested() -> bool:
    """True once the process was asked to stop: sources end their partitions at the next poll."""
    return _requested.is_set()


def request_stop() -> None:
    """What the first SIGTERM/SIGINT does; also for embedding the flow (tests, a supervisor thread)."""
    _requested.set()


def install_stop_handlers(timeout_seconds: float, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """Handle `signals` in this process (call from the main thread, once, before the flow runs)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if _requested.is_set():
            log.warning("%s again: stopping at once", name)
            os._exit(128 + signum)
        log.warning(
            "%s: ending the sources, committing what is held (at most %.0f s; again to stop at once)",
            name,
            timeout_seconds,
            extra={"signal": name, "timeout_seconds": timeout_seconds},
        )
        request_stop()
        watchdog = threading.Timer(timeout_seconds, _stop_now, args=(name, timeout_seconds))
        watchdog.daemon = True
        watchdog.start()

    for signum in signals:
        signal.signal(signum, on_signal)


def _stop_now(name: str, timeout_seconds: float) -> None:
    log.error("the flow did not drain within %.0f s of %s: stopping at once", timeout_seconds, name)
    logging.shutdown()
    os._exit(1)
