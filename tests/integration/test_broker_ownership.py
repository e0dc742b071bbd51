"""A broker a test starts dies with the test's process, even when that process is SIGKILLed (nothing is left
running); the CLI's detached broker, which must outlive its command, is covered in test_local_broker.py."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.local_kafka import pid_alive, proc_cmdline
from tests.fixtures.kafka import local_jvm_unavailable_reason
from tests.fixtures.requirements import BROKER_VARIABLES, require

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="lists processes through /proc"),
]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0
DEATH_TIMEOUT_S = 10.0

# A test in miniature: starts a broker the way tests do, says when it is up, then waits to be killed.
OWNER = """
import sys, time
from pathlib import Path
from tests.fixtures.kafka import private_local_broker
with private_local_broker(Path(sys.argv[1])):
    print("up", flush=True)
    time.sleep(600)
"""


def processes_naming(text: str) -> list[int]:
    """Live processes (zombies count as gone) whose command line contains `text`."""
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if text in proc_cmdline(pid) and pid_alive(pid)]


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline() if ready else ""


def test_a_broker_dies_with_the_process_that_started_it_even_when_killed(tmp_path: Path) -> None:
    require("the local JVM broker", local_jvm_unavailable_reason(), variables=BROKER_VARIABLES)
    data_dir = (tmp_path / "kafka").resolve()
    broker_mark = str(data_dir / "server.properties")  # on the JVM's command line, and no other's
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(data_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    watchdog_mark = f"watchdog.py {owner.pid}"
    try:
        assert read_line(owner, START_TIMEOUT_S).strip() == "up", f"no broker started (exit {owner.poll()})"
        brokers = processes_naming(broker_mark)
        assert len(brokers) == 1, f"expected one broker JVM, found pids {brokers}"
        watched = bool(processes_naming(watchdog_mark))

        owner.kill()  # SIGKILL: no finally, no atexit, no fixture teardown runs in the owner
        owner.wait()

        deadline = time.monotonic() + DEATH_TIMEOUT_S
        while (left := processes_naming(broker_mark) + processes_naming(watchdog_mark)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == [], f"still running {DEATH_TIMEOUT_S:.0f} s after their owner was killed: pids {left}"
        assert watched, "no watchdog was watching the owner"
    finally:
        owner.kill()
        owner.wait()
        for pid in processes_naming(broker_mark) + processes_naming(watchdog_mark):  # never leave one behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
