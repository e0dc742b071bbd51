"""Processes and ports: finding java, asking whether a pid still runs, signalling a process group, free loopback
ports, and the watchdog that makes an owned broker die with its owner (``watchdog.py`` says how)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from scripts.local_kafka.common import HOST, BrokerError

WATCHDOG = Path(__file__).with_name("watchdog.py")


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java is not on PATH (Kafka 4.x needs Java 17+)")
    return java


def proc_field(pid: int, ps_field: str) -> str | None:
    """One `ps` field for a pid (for systems without /proc, e.g. macOS)."""
    result = subprocess.run(
        ["ps", "-ww", "-o", f"{ps_field}=", "-p", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _has_proc() -> bool:
    return Path("/proc/self/stat").is_file()


def _proc_state(pid: int) -> str | None:
    """One-letter process state (R, S, Z, ...), None if there is no such process."""
    if not _has_proc():
        state = proc_field(pid, "stat")
        return state[:1] if state else None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # rsplit: the command name in (...) may itself contain spaces or ")".
    return stat.rsplit(")", 1)[1].split()[0]


def proc_cmdline(pid: int) -> str:
    if not _has_proc():
        return proc_field(pid, "command") or ""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """True if the process exists and has not exited.

    A zombie (exited, not yet reaped because its parent, e.g. another pytest
    worker, is still running) counts as gone.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return _proc_state(pid) not in ("Z", None)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so they cannot repeat)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in socks]


def start_watchdog(owner: int, log: Path) -> subprocess.Popen[bytes]:
    """A watchdog that already watches ``owner`` and leads a new process group: start the broker into that group
    (``process_group=watchdog.pid``) and both get SIGKILL when ``owner`` exits, however it exits.

    The group stays in this session (a process cannot join a group of another session), but it is not the
    terminal's foreground group, so a Ctrl-C there reaches the owner, which stops its broker itself. Its errors go
    to the broker's ``log``: an inherited stderr would hold the starter's pipe open (the CLI's, read to its end).
    """
    # -I -S: the watchdog uses the standard library only; nothing from the environment or site-packages.
    command = [sys.executable, "-I", "-S", str(WATCHDOG), str(owner)]
    with open(log, "ab") as log_file:
        watchdog = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file, process_group=0
        )
    assert watchdog.stdout is not None
    with watchdog.stdout:
        ready = watchdog.stdout.readline()  # once it says so, the owner's exit cannot go unseen
    if ready.strip() != b"ready":
        watchdog.kill()
        raise BrokerError(f"the broker's watchdog did not start (exit {watchdog.wait()}; owner pid {owner} gone?)")
    return watchdog
