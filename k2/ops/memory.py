"""Giving the heap's freed memory back to the operating system.

glibc's malloc keeps freed chunks inside its heaps: a flow that allocates and frees many small objects every
second (librdkafka's messages, Python lists, pyiceberg's metadata) ends up holding much of it as free but resident
memory. Trimming now and then (off the flow's thread, without the GIL) gives it back and lowers the flow's RSS, at
a small cost per trim (figures: benchmarks/report.md, "Design measurements: Returning free heap memory"). Setting
`MALLOC_MMAP_THRESHOLD_` or `MALLOC_TRIM_THRESHOLD_` did not help: the free chunks lie between live ones, not at
the heap's top.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from pathlib import Path


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the whole free pages of every malloc heap to the system (False where malloc cannot)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


class MemoryReleaser:
    """Calls `release_free_memory` at most once every `interval` seconds, for a loop that runs more often."""

    def __init__(self, interval: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.interval, self._clock = interval, clock
        self._last = clock()
        self.releases = 0

    def maybe_release(self) -> None:
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self.releases += release_free_memory()


def rss_bytes(pid: int | str = "self") -> int:
    """Resident memory of a process (`VmRSS` in /proc/<pid>/status); raises ProcessLookupError when it is gone."""
    return _status_kib(pid, "VmRSS:") * 1024


def peak_rss_bytes(pid: int | str = "self") -> int:
    """The highest resident memory a live process has had (`VmHWM`)."""
    return _status_kib(pid, "VmHWM:") * 1024


def _status_kib(pid: int | str, field: str) -> int:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        raise ProcessLookupError(f"no process {pid}") from None
    for line in lines:
        if line.startswith(field):
            return int(line.split()[1])
    raise ProcessLookupError(f"no {field} for pid {pid} (a zombie?)")
