"""Starting a broker: its ``server.properties`` (one KRaft node, loopback only), storage formatting, the JVM
launch, the wait until it answers, and a retry with new ports when another process took the ones picked.

``start_broker`` is the one entry point. A broker belongs to the process that starts it (it dies with that
process, even a SIGKILLed one: ``watchdog.py``) unless started ``detached``, as the CLI's ``start`` does.
``K2_KAFKA_JVM_OPTS`` adds JVM options to the defaults.
"""

from __future__ import annotations

import base64
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.local_kafka.broker import Broker, log_tail
from scripts.local_kafka.common import (
    HOST,
    LOG_NAME,
    PORT_RETRIES,
    PROPS_NAME,
    READY_TIMEOUT_S,
    BrokerError,
    eprint,
)
from scripts.local_kafka.jars import classpath, fetch, logging_opts
from scripts.local_kafka.processes import find_java, free_ports, start_watchdog

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
        "# Written by scripts/local_kafka: single-node KRaft (broker + controller), loopback only.",
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
        *logging_opts(),
        "-cp",
        classpath(),
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


def _launch(
    java: str, props: Path, log: Path, extra_jvm_opts: Sequence[str], group: int | None
) -> subprocess.Popen[bytes]:
    """The broker JVM, in process group ``group`` (an owned broker's watchdog's) or, with None, in a session of its
    own: Ctrl-C in the terminal or the end of the starting process (the CLI) does not take a detached broker down.
    Either way stop() signals the whole group."""
    env_opts = shlex.split(os.environ.get("K2_KAFKA_JVM_OPTS", ""))
    cmd = [
        java,
        *BROKER_JVM_OPTS,
        *env_opts,
        *extra_jvm_opts,
        *logging_opts(),
        "-cp",
        classpath(),
        "kafka.Kafka",
        str(props),
    ]
    placement = {"start_new_session": True} if group is None else {"process_group": group}
    with open(log, "ab") as log_file:
        return subprocess.Popen(
            cmd,
            cwd=props.parent,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            close_fds=True,
            **placement,
        )


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
    detached: bool = False,
    owner: int | None = None,
) -> Broker:
    """Start a broker and wait until it answers; the caller owns ``stop()``.

    ``data_dir=None`` makes a fresh temp dir that ``stop()`` deletes
    (``ephemeral`` defaults to that). A reused, already formatted ``data_dir``
    keeps its topics. Ports default to free loopback ports.
    ``advertised_port``: the port the broker tells clients to connect to
    (default: its own), for a proxy in front of it; clients that reconnect
    after reading the metadata then go through the proxy. The readiness check
    talks to the broker's own port, so the proxy need not run yet.
    ``owner``: the pid the broker dies with, even if that process is killed
    (default: this process; e.g. a test run's controller for a broker its
    workers share). ``detached``: no owner, the broker runs until stopped.
    """
    java = find_java()
    fetch()
    is_ephemeral = data_dir is None if ephemeral is None else ephemeral
    data = Path(tempfile.mkdtemp(prefix="k2-kafka-")) if data_dir is None else Path(data_dir)
    plan = _Plan(
        data=data.expanduser().resolve(),
        java=java,
        ephemeral=is_ephemeral,
        timeout=timeout,
        jvm_opts=tuple(jvm_opts),
        advertised_port=advertised_port,
        owner=None if detached else owner or os.getpid(),
    )
    plan.data.mkdir(parents=True, exist_ok=True)
    try:
        return _start_in(plan, port, controller_port)
    except BaseException:
        if is_ephemeral:
            shutil.rmtree(plan.data, ignore_errors=True)
        raise


@dataclass(frozen=True)
class _Plan:
    """What every start attempt of one ``start_broker`` call shares (all but the ports)."""

    data: Path
    java: str
    ephemeral: bool
    timeout: float
    jvm_opts: tuple[str, ...]
    advertised_port: int | None
    owner: int | None  # the pid the broker dies with; None: detached


def _start_in(plan: _Plan, port: int | None, controller_port: int | None) -> Broker:
    # Free ports are picked, released, then bound by the JVM: another process
    # can grab one in between, so retry with new ports (only if we picked them).
    attempts = PORT_RETRIES if port is None and controller_port is None else 1
    for attempt in range(1, attempts + 1):
        picked = free_ports(2)
        broker_port = port or picked[0]
        ctrl_port = controller_port or (picked[1] if picked[1] != broker_port else picked[0])
        log = plan.data / LOG_NAME
        log_offset = log.stat().st_size if log.exists() else 0  # a reused dir appends
        try:
            return _start_once(plan, broker_port, ctrl_port)
        except BrokerError:
            if attempt == attempts or not _is_port_clash(log, log_offset):
                raise
            eprint(f"port clash on {broker_port}/{ctrl_port}, retrying with new ports")
    raise AssertionError("unreachable")


def _start_once(plan: _Plan, port: int, controller_port: int) -> Broker:
    log_dir = plan.data / "logs"
    props = plan.data / PROPS_NAME
    props.write_text(
        server_properties(
            port=port, controller_port=controller_port, log_dir=log_dir, advertised_port=plan.advertised_port
        )
    )
    format_storage(plan.java, props, log_dir)
    log = plan.data / LOG_NAME
    # An owned broker starts into the group of a watchdog that is already watching its owner: no moment in which
    # the owner could die and leave the broker behind.
    watchdog = None if plan.owner is None else start_watchdog(plan.owner, log)
    try:
        proc = _launch(plan.java, props, log, plan.jvm_opts, None if watchdog is None else watchdog.pid)
    except BaseException:
        if watchdog is not None:
            watchdog.kill()
            watchdog.wait()
        raise
    broker = Broker(
        pid=proc.pid,
        bootstrap=f"{HOST}:{port}",
        data_dir=plan.data,
        log=log,
        ephemeral=plan.ephemeral,
        advertised_port=plan.advertised_port,
        pgid=None if watchdog is None else watchdog.pid,
        _proc=proc,
        _watchdog=watchdog,
    )
    try:
        _wait_ready(broker, plan.timeout)
    except BaseException:
        broker.ephemeral = False  # start_broker() decides about the data dir
        broker.stop(timeout=10.0)
        raise
    return broker
