#!/usr/bin/env python3
"""Run a real single-node Apache Kafka broker locally, without Docker.

The broker jars come from Maven Central (scripts/kafka/pom.xml) and are cached
in an ignored folder, so only the first ``fetch`` needs Maven and the network.
The broker runs as one KRaft node (broker + controller), bound to loopback only,
on free ports, sized for dev machines and CI (-Xmx512m).

CLI (from the repository root)::

    uv run python scripts/local_kafka.py fetch
    uv run python scripts/local_kafka.py start [--data-dir DIR] [--port N] [--advertised-port N]
    uv run python scripts/local_kafka.py status
    uv run python scripts/local_kafka.py env [--export]
    uv run python scripts/local_kafka.py stop

``start`` prints the bootstrap address (``127.0.0.1:PORT``) as its last stdout
line; progress goes to stderr.

Library (used by tests/fixtures/kafka.py)::

    with start_broker() as broker:   # private broker in a fresh temp dir
        use(broker.bootstrap)

Environment:
    K2_KAFKA_CACHE      jar cache root (default .cache/kafka); jars go to <root>/<version>/lib
    K2_KAFKA_STATE_DIR  where the CLI keeps broker.json (default .k2/kafka)
    K2_KAFKA_JVM_OPTS   extra JVM options for the broker, appended to the defaults

Only the standard library is used, except confluent-kafka for the readiness
check (an admin ``list_topics()``), imported lazily.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPTS = REPO_ROOT / "scripts" / "kafka"
POM = KAFKA_SCRIPTS / "pom.xml"
LOG4J_CONFIG = KAFKA_SCRIPTS / "log4j2.properties"

HOST = "127.0.0.1"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
PORT_RETRIES = 3
LOG_TAIL_LINES = 40

LOG_NAME = "broker.log"
PROPS_NAME = "server.properties"
STATE_NAME = "broker.json"
FETCH_MARKER = ".fetched"

# Modest heap for a 2-core CI box; exit (rather than limp on) after an OOM.
BROKER_JVM_OPTS = (
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
# The storage formatter runs for a second: skip the optimising JIT and G1 set-up.
TOOL_JVM_OPTS = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped."""


def _eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- #
# Jars: fetch once from Maven Central, then reuse the cache offline.
# --------------------------------------------------------------------------- #


def kafka_version() -> str:
    """The Kafka version pinned in the POM (single source of truth)."""
    node = ET.parse(POM).getroot().find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise BrokerError(f"no <kafka.version> property in {POM}")
    return node.text.strip()  # type: ignore[union-attr]


def cache_dir() -> Path:
    root = os.environ.get("K2_KAFKA_CACHE")
    base = Path(root).expanduser() if root else REPO_ROOT / ".cache" / "kafka"
    return base.resolve() / kafka_version()


def lib_dir() -> Path:
    return cache_dir() / "lib"


def _pom_digest() -> str:
    # The marker stores the POM hash, so editing the POM (e.g. log4j bump) refetches.
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def is_fetched() -> bool:
    marker = cache_dir() / FETCH_MARKER
    return marker.is_file() and marker.read_text().strip() == _pom_digest() and any(lib_dir().glob("kafka_2.13-*.jar"))


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock; released when the block ends or the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Python opens files non-inheritable, so a broker started inside the block
    # does not keep holding the lock.
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch() -> Path:
    """Copy the broker's runtime jars into the cache (no-op when already there)."""
    lib = lib_dir()
    if is_fetched():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(f"Kafka jars are not cached in {lib} and Maven (mvn) is not on PATH to fetch them")
    cache = cache_dir()
    with file_lock(cache / ".fetch.lock"):
        if is_fetched():  # another process fetched while we waited for the lock
            return lib
        _eprint(f"fetching Kafka {kafka_version()} jars from Maven Central into {lib} ...")
        staging = Path(tempfile.mkdtemp(prefix="lib.", dir=cache))
        try:
            _run_maven(mvn, staging)
            shutil.rmtree(lib, ignore_errors=True)
            staging.rename(lib)  # atomic: a reader never sees a half-filled lib/
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        (cache / FETCH_MARKER).write_text(_pom_digest() + "\n")
    return lib


def _run_maven(mvn: str, output_dir: Path) -> None:
    cmd = [
        mvn,
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={output_dir}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            f"Maven fetch failed (exit {result.returncode}): {shlex.join(cmd)}\n{result.stdout}{result.stderr}"
        )


# --------------------------------------------------------------------------- #
# Processes
# --------------------------------------------------------------------------- #


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java is not on PATH (Kafka 4.x needs Java 17+)")
    return java


def _proc_field(pid: int, ps_field: str) -> str | None:
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
        state = _proc_field(pid, "stat")
        return state[:1] if state else None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # rsplit: the command name in (...) may itself contain spaces or ")".
    return stat.rsplit(")", 1)[1].split()[0]


def _proc_cmdline(pid: int) -> str:
    if not _has_proc():
        return _proc_field(pid, "command") or ""
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


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


# --------------------------------------------------------------------------- #
# Broker
# --------------------------------------------------------------------------- #


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
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    @property
    def properties(self) -> Path:
        return self.data_dir / PROPS_NAME

    def is_running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        # The pid may have been reused since the state was written: check it is
        # *this* broker before anyone signals it.
        return pid_alive(self.pid) and self._owns_pid()

    def _owns_pid(self) -> bool:
        cmdline = _proc_cmdline(self.pid)
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
            rss_kib = _proc_field(self.pid, "rss")
            return int(rss_kib) * 1024 if rss_kib else None
        return None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the broker's process group, SIGKILL after ``timeout``."""
        if self.is_running():
            _signal_group(self.pid, signal.SIGTERM)
            if not self._wait_gone(timeout):
                _signal_group(self.pid, signal.SIGKILL)
                if not self._wait_gone(10.0):
                    raise BrokerError(f"broker pid {self.pid} survived SIGKILL")
        elif self._proc is not None:
            self._proc.poll()  # reap an already-dead child
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


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so they cannot repeat)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in socks]


def random_cluster_id() -> str:
    """A Kafka-style cluster id (base64url UUID), without a separate JVM launch."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka avoids these: they look like CLI flags
            return cluster_id


def server_properties(*, port: int, controller_port: int, log_dir: Path, advertised_port: int | None = None) -> str:
    internal_topics = (
        "offsets.topic",
        "transaction.state.log",
        "share.coordinator.state.topic",
    )
    lines = [
        "# Written by scripts/local_kafka.py: single-node KRaft (broker + controller), loopback only.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{HOST}:{controller_port}",
        f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        f"advertised.listeners=PLAINTEXT://{HOST}:{advertised_port or port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={log_dir}",
        "num.partitions=1",
        "auto.create.topics.enable=true",
        "# One node: internal topics cannot have more than one replica.",
        *(f"{topic}.replication.factor=1" for topic in internal_topics),
        *(f"{topic}.min.isr=1" for topic in internal_topics),
        "# Fewer internal partitions make the first group join / transaction start fast.",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.num.partitions=1",
        "share.coordinator.state.topic.num.partitions=1",
        "group.initial.rebalance.delay.ms=0",
    ]
    return "\n".join(lines) + "\n"


def _classpath() -> str:
    return str(lib_dir() / "*")  # JVM class-path wildcard: every jar in lib/


def _logging_opts() -> list[str]:
    return [f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"]


def _formatted_cluster_id(log_dir: Path) -> str | None:
    """The cluster id of an already formatted log dir, None for a fresh one."""
    meta = log_dir / "meta.properties"
    if not meta.is_file():
        return None
    for line in meta.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "cluster.id":
            return value.strip()
    raise BrokerError(f"no cluster.id in {meta}")


def format_storage(java: str, props: Path, log_dir: Path) -> None:
    """Format a fresh log dir; on a reused one only check it (``--ignore-formatted``).

    Even with ``--ignore-formatted`` the tool insists that ``-t`` matches the
    stored cluster id, so a reused dir is passed its own id.
    """
    existing_id = _formatted_cluster_id(log_dir)
    cmd = [
        java,
        *TOOL_JVM_OPTS,
        *_logging_opts(),
        "-cp",
        _classpath(),
        "kafka.tools.StorageTool",
        "format",
        "-t",
        existing_id or random_cluster_id(),
        "-c",
        str(props),
    ]
    if existing_id:
        cmd.append("--ignore-formatted")
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            f"formatting Kafka storage failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )


def _launch(java: str, props: Path, log: Path, extra_jvm_opts: Sequence[str]) -> subprocess.Popen[bytes]:
    env_opts = shlex.split(os.environ.get("K2_KAFKA_JVM_OPTS", ""))
    cmd = [
        java,
        *BROKER_JVM_OPTS,
        *env_opts,
        *extra_jvm_opts,
        *_logging_opts(),
        "-cp",
        _classpath(),
        "kafka.Kafka",
        str(props),
    ]
    with open(log, "ab") as log_file:
        # Own session/process group: Ctrl-C in the terminal or the end of the
        # starting process (CLI, pytest worker) does not take the broker down,
        # and stop() can signal the whole group.
        return subprocess.Popen(
            cmd,
            cwd=props.parent,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


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
            "`uv run python scripts/local_kafka.py ...` (it is a project dependency)"
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


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _wait_ready(broker: Broker, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not broker.is_running():
            raise BrokerError(f"broker exited during start-up; last lines of its log:\n{log_tail(broker.log)}")
        # Probe the port first (cheap) so we only build an admin client once it listens.
        remaining = deadline - time.monotonic()
        if _port_open(broker.port) and broker.answers(timeout=max(0.5, min(5.0, remaining))):
            return
        time.sleep(0.2)
    raise BrokerError(f"broker not ready after {timeout:.0f}s; last lines of its log:\n{log_tail(broker.log)}")


def _is_port_clash(log: Path, offset: int) -> bool:
    """Did the start that wrote ``log`` from ``offset`` on fail to bind its ports?"""
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return False
    return "Address already in use" in text or "BindException" in text


def start_broker(
    data_dir: Path | str | None = None,
    *,
    port: int | None = None,
    controller_port: int | None = None,
    ephemeral: bool | None = None,
    timeout: float = READY_TIMEOUT_S,
    jvm_opts: Sequence[str] = (),
    advertised_port: int | None = None,
) -> Broker:
    """Start a broker and wait until it answers; the caller owns ``stop()``.

    ``data_dir=None`` makes a fresh temp dir that ``stop()`` deletes
    (``ephemeral`` defaults to that). A reused, already formatted ``data_dir``
    keeps its topics. Ports default to free loopback ports.
    ``advertised_port``: the port the broker tells clients to connect to
    (default: its own), for a proxy in front of it; clients that reconnect
    after reading the metadata then go through the proxy. The readiness check
    talks to the broker's own port, so the proxy need not run yet.
    """
    java = find_java()
    fetch()
    is_ephemeral = data_dir is None if ephemeral is None else ephemeral
    data = Path(tempfile.mkdtemp(prefix="k2-kafka-")) if data_dir is None else Path(data_dir)
    data = data.expanduser().resolve()
    data.mkdir(parents=True, exist_ok=True)
    try:
        return _start_in(data, java, port, controller_port, is_ephemeral, timeout, jvm_opts, advertised_port)
    except BaseException:
        if is_ephemeral:
            shutil.rmtree(data, ignore_errors=True)
        raise


def _start_in(
    data: Path,
    java: str,
    port: int | None,
    controller_port: int | None,
    ephemeral: bool,
    timeout: float,
    jvm_opts: Sequence[str],
    advertised_port: int | None = None,
) -> Broker:
    # Free ports are picked, released, then bound by the JVM: another process
    # can grab one in between, so retry with new ports (only if we picked them).
    attempts = PORT_RETRIES if port is None and controller_port is None else 1
    for attempt in range(1, attempts + 1):
        picked = free_ports(2)
        broker_port = port or picked[0]
        ctrl_port = controller_port or (picked[1] if picked[1] != broker_port else picked[0])
        log = data / LOG_NAME
        log_offset = log.stat().st_size if log.exists() else 0  # a reused dir appends
        try:
            return _start_once(data, java, broker_port, ctrl_port, ephemeral, timeout, jvm_opts, advertised_port)
        except BrokerError:
            if attempt == attempts or not _is_port_clash(log, log_offset):
                raise
            _eprint(f"port clash on {broker_port}/{ctrl_port}, retrying with new ports")
    raise AssertionError("unreachable")


def _start_once(
    data: Path,
    java: str,
    port: int,
    controller_port: int,
    ephemeral: bool,
    timeout: float,
    jvm_opts: Sequence[str],
    advertised_port: int | None = None,
) -> Broker:
    log_dir = data / "logs"
    props = data / PROPS_NAME
    props.write_text(
        server_properties(port=port, controller_port=controller_port, log_dir=log_dir, advertised_port=advertised_port)
    )
    format_storage(java, props, log_dir)
    log = data / LOG_NAME
    proc = _launch(java, props, log, jvm_opts)
    broker = Broker(
        pid=proc.pid,
        bootstrap=f"{HOST}:{port}",
        data_dir=data,
        log=log,
        ephemeral=ephemeral,
        advertised_port=advertised_port,
        _proc=proc,
    )
    try:
        _wait_ready(broker, timeout)
    except BaseException:
        broker.ephemeral = False  # start_broker() decides about the data dir
        broker.stop(timeout=10.0)
        raise
    return broker


# --------------------------------------------------------------------------- #
# CLI state file
# --------------------------------------------------------------------------- #


def state_dir() -> Path:
    override = os.environ.get("K2_KAFKA_STATE_DIR")
    return Path(override).expanduser().resolve() if override else REPO_ROOT / ".k2" / "kafka"


def state_file() -> Path:
    return state_dir() / STATE_NAME


def load_state() -> Broker | None:
    try:
        return Broker.from_json(json.loads(state_file().read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError) as exc:
        raise BrokerError(f"unreadable state file {state_file()}: {exc}") from exc


def save_state(broker: Broker) -> None:
    path = state_file()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(broker.to_json(), indent=2) + "\n")
    tmp.replace(path)  # atomic: readers never see a half-written file


def _running_broker() -> Broker | None:
    broker = load_state()
    return broker if broker is not None and broker.is_running() else None


def cmd_fetch(_: argparse.Namespace) -> int:
    started = time.monotonic()
    already = is_fetched()
    lib = fetch()
    verb = "already fetched" if already else f"fetched in {time.monotonic() - started:.1f}s"
    _eprint(f"Kafka {kafka_version()} jars {verb}: {lib}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    with file_lock(state_dir() / ".lock"):
        existing = load_state()
        if existing is not None and existing.is_running():
            _eprint(f"broker already running (pid {existing.pid}); `stop` it to restart")
            print(existing.bootstrap)
            return 0
        if existing is not None:  # stale: the broker died without `stop`
            existing.stop()
            state_file().unlink(missing_ok=True)
        data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="data-", dir=state_dir()))
        started = time.monotonic()
        broker = start_broker(
            data_dir,
            port=args.port,
            controller_port=args.controller_port,
            ephemeral=args.data_dir is None,
            timeout=args.timeout,
            advertised_port=args.advertised_port,
        )
        save_state(broker)
    _eprint(f"Kafka {kafka_version()} ready in {time.monotonic() - started:.1f}s (pid {broker.pid}, log {broker.log})")
    print(broker.bootstrap)
    return 0


def cmd_stop(_: argparse.Namespace) -> int:
    with file_lock(state_dir() / ".lock"):
        broker = load_state()
        if broker is None:
            _eprint("no local broker running")
            return 0
        was_running = broker.is_running()
        broker.stop()
        state_file().unlink(missing_ok=True)
    _eprint(f"stopped broker pid {broker.pid}" if was_running else "broker was not running; state cleared")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    broker = load_state()
    if broker is None:
        print("not running")
        return 1
    if not broker.is_running():
        print(f"not running (stale state: pid {broker.pid} is gone; `stop` clears it)")
        return 1
    answers = broker.answers()
    rss = broker.rss_bytes()
    rss_text = f", rss {rss / 2**20:.0f} MiB" if rss else ""
    print(
        f"{broker.bootstrap} {'answers' if answers else 'DOES NOT ANSWER'} "
        f"(pid {broker.pid}{rss_text}, data {broker.data_dir})"
    )
    return 0 if answers else 1


def cmd_env(args: argparse.Namespace) -> int:
    broker = _running_broker()
    if broker is None:
        _eprint("no local broker running (start one with `scripts/local_kafka.py start`)")
        return 1
    print(f"{'export ' if args.export else ''}K2_KAFKA_BOOTSTRAP={broker.bootstrap}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Local Apache Kafka broker from Maven Central jars (no Docker).")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the broker jars once (cached)").set_defaults(func=cmd_fetch)
    start = sub.add_parser("start", help="start a broker; prints the bootstrap address last")
    start.add_argument("--data-dir", type=Path, help="reuse this dir (kept on stop); default: fresh")
    start.add_argument("--port", type=int, help="broker port (default: a free one)")
    start.add_argument(
        "--controller-port",
        type=int,
        help="KRaft controller port (default: a free one)",
    )
    start.add_argument(
        "--advertised-port",
        type=int,
        help="port advertised to clients, e.g. a proxy's in front of the broker (default: the broker port)",
    )
    start.add_argument("--timeout", type=float, default=READY_TIMEOUT_S, help="readiness timeout (s)")
    start.set_defaults(func=cmd_start)
    sub.add_parser("stop", help="stop the broker (idempotent)").set_defaults(func=cmd_stop)
    sub.add_parser("status", help="exit 1 unless a broker runs and answers").set_defaults(func=cmd_status)
    env = sub.add_parser("env", help="print K2_KAFKA_BOOTSTRAP=... for eval / Makefiles")
    env.add_argument("--export", action="store_true", help="prefix with `export `")
    env.set_defaults(func=cmd_env)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokerError as exc:
        _eprint(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
