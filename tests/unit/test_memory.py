import platform

import pytest

from k2.ops.memory import MemoryReleaser, release_free_memory

pytestmark = pytest.mark.unit


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_freed_heap_memory_goes_back_to_the_system():
    # Many small blocks, then all but every 16th freed: the live ones pin the heap (free chunks between live
    # ones, never at its top), so freeing returns almost nothing (measured: 3 MiB of ~250) until it is trimmed.
    blocks = [bytearray(600) for _ in range(400_000)]  # > 512 B: glibc's malloc, not Python's small-object arenas
    kept = blocks[::16]
    del blocks
    before = _rss_kib()
    assert release_free_memory()
    assert before - _rss_kib() > 100_000  # KiB: ~125 MiB measured
    assert len(kept) == 25_000


def test_releases_at_most_once_an_interval():
    now = [0.0]
    releaser = MemoryReleaser(interval=2.0, clock=lambda: now[0])
    for t in (0.5, 1.0, 1.9):
        now[0] = t
        releaser.maybe_release()
    assert releaser.releases == 0
    now[0] = 2.0
    releaser.maybe_release()
    now[0] = 3.0
    releaser.maybe_release()
    expected = 1 if release_free_memory() else 0
    assert releaser.releases == expected
