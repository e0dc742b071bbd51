"""A running broker (``Broker``): is it running, does it answer, its memory, stopping it, and its JSON form (the
CLI's state file, the test run's shared broker)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from scripts.local_kafka.common import LOG_TAIL_LINES, PROPS_NAME, STOP_TIMEOUT_S, BrokerError
from scripts.local_kafka.jars import kafka_version
from scripts.local_kafka.processes import pid_alive, proc_cmdline, proc_field, signal_group


@dataclass
class Broker:
    """A running local broker. ``stop()`` is idempotent; also a context manager."""

    pid: int
    bootstrap: str
    data_dir: Path
    log: Path
    ephemeral: bool = False  # data_dir was made for this broker; stop() deletes it
    # The port clients are told to reconnect to (metadata), when it is not the broker's own: e.g. a proxy in front.
    advertised_port: int | None = None
    # The process group stop() signals: the broker's own (None: pid) or, for an owned broker, its watchdog's.
    pgid: int | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    @property
    def properties(self) -> Path:
        return self.data_dir / PROPS_NAME

    @property
    def group(self) -> int:
        return self.pid if self.pgid is None else self.pgid

    def is_running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        # The pid may have been reused since the state was written: check it is
        # *this* broker before anyone signals it.
        return pid_alive(self.pid) and self._owns_pid()

    def _owns_pid(self) -> bool:
        cmdline = proc_cmdline(self.pid)
        return "kafka.Kafka" in cmdline and str(self.properties) in cmdline

    def answers(self, timeout: float = 5.0) -> bool:
        return broker_answers(self.bootstrap, timeout=timeout)

    def rss_bytes(self) -> int | None:
        """Resident memory of the broker JVM (Linux /proc, else ps)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            rss_kib = proc_field(self.pid, "rss")
            return int(rss_kib) * 1024 if rss_kib else None
        return None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the broker's process group, SIGKILL after ``timeout``."""
        if self.is_running():
            signal_group(self.group, signal.SIGTERM)
            if not self._wait_gone(timeout):
                signal_group(self.group, signal.SIGKILL)
                if not self._wait_gone(10.0):
                    raise BrokerError(f"broker pid {self.pid} survived SIGKILL")
        elif self._proc is not None:
            self._proc.poll()  # reap an already-dead child
        if self._watchdog is not None:  # the group's SIGTERM ended it, unless the broker had died before
            self._watchdog.kill()
            self._watchdog.wait()
        if self.ephemeral:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(timeout=0.2)
                    return True
            elif not pid_alive(self.pid):
                return True
            else:
                time.sleep(0.2)
        return False

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "bootstrap": self.bootstrap,
            "data_dir": str(self.data_dir),
            "log": str(self.log),
            "ephemeral": self.ephemeral,
            "advertised_port": self.advertised_port,
            "pgid": self.pgid,
            "kafka_version": kafka_version(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Broker:
        return cls(
            pid=int(data["pid"]),
            bootstrap=str(data["bootstrap"]),
            data_dir=Path(data["data_dir"]),
            log=Path(data["log"]),
            ephemeral=bool(data.get("ephemeral", False)),
            advertised_port=data.get("advertised_port"),
            pgid=data.get("pgid"),
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {log})"


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True if an admin ``list_topics()`` succeeds: a real request, not just an open port."""
    try:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient
    except ImportError as exc:
        raise BrokerError(
            "confluent-kafka is needed for the broker readiness check: run this via "
            "`uv run python -m scripts.local_kafka ...` (it is a project dependency)"
        ) from exc
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000)),
            "log_level": 0,  # silence librdkafka's connection-refused noise while polling
        }
    )
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True
