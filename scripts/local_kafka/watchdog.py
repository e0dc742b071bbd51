"""Kill a broker when the process that owns it exits, even by SIGKILL: ``python -I -S watchdog.py OWNER_PID``.

Started by ``processes.start_watchdog`` as the leader of a new process group. It starts watching OWNER_PID, prints
``ready``, and waits; the broker JVM is then started into its group. When the owner exits, the whole group gets
SIGKILL: the broker and this watchdog. ``Broker.stop()`` signals the group, so the watchdog ends with the broker.

On Linux a pidfd wakes the watchdog the moment the owner exits (a zombie owner counts as exited) and a reused pid
cannot fool it; elsewhere the owner's pid is polled. Standard library only: it runs by path, outside any package.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

POLL_S = 0.2


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _ready() -> None:
    print("ready", flush=True)
    sys.stdout.close()


def wait_for_exit(pid: int) -> None:
    """Say ``ready`` once watching ``pid``, then return when it has exited (at once if it is gone already)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd: not Linux, or a kernel before 5.3
        _ready()
        while _exists(pid):
            time.sleep(POLL_S)
        return
    _ready()
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.poll()  # readable once the process has exited


def main(argv: list[str]) -> int:
    owner = int(argv[1])
    if os.getpgrp() != os.getpid():  # killpg below would hit whoever's group this is
        print("watchdog.py must lead its own process group (process_group=0)", file=sys.stderr)
        return 2
    wait_for_exit(owner)
    os.killpg(os.getpgrp(), signal.SIGKILL)  # the broker, then this process
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
