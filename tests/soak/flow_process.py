"""The ingest flow as the real process an operator runs (`scripts/ingest.sh`): Bytewax recovery on, tailing Kafka."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from k2.flow.recovery import ensure_recovery_store, flow_command
from k2.ops.config import Settings
from tests.soak.config import ROOT


def flow_environment(settings: Settings, metrics_port: int, *, tail: bool = True) -> dict[str, str]:
    return {
        **os.environ,
        "K2_SOURCE": "kafka",
        "K2_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "K2_TRADES_TOPIC": settings.trades_topic,
        "K2_QUOTES_TOPIC": settings.quotes_topic,
        "K2_DLQ_TOPIC": settings.dlq_topic,
        "K2_KAFKA_TAIL": "true" if tail else "false",
        "K2_METRICS_PORT": str(metrics_port),
        "K2_DATA_DIR": settings.data_dir,
        "K2_NAMESPACE": settings.namespace,
        "K2_EPOCH_SECONDS": str(settings.epoch_seconds),
        "K2_SEAM_HEARTBEAT_SECONDS": str(settings.seam_heartbeat_seconds),
        "K2_SNAPSHOT_RETENTION_SECONDS": str(settings.snapshot_retention_seconds),
        "K2_MAINTENANCE_EVERY_COMMITS": str(settings.maintenance_every_commits),
    }


@contextmanager
def flow_process(
    settings: Settings, workdir: Path, metrics_port: int, trace_every: float = 0.0
) -> Iterator[subprocess.Popen]:
    """Run `python -m bytewax.run flows.ingest` with recovery (as scripts/ingest.sh does), tailing Kafka and serving
    its metrics on `metrics_port`; stopped on exit. `trace_every` > 0: under tracemalloc (see traced_flow)."""
    ensure_recovery_store(workdir / "recovery")
    runner: tuple[str, ...] = ("-m", "bytewax.run")
    if trace_every > 0:
        runner = ("-m", "tests.soak.traced_flow", str(trace_dir(workdir)), str(trace_every))
    process = _start(settings, workdir, flow_environment(settings, metrics_port), runner)
    try:
        yield process
    finally:
        stop(process)


def finish_bounded(settings: Settings, workdir: Path, timeout: float = 300.0) -> int:
    """Run the flow once more from the same recovery state up to the end of every partition, as an operator ends
    a stream: it stops by itself and closes its sink, which commits what the side tables still buffer. Returns
    the exit code."""
    process = _start(settings, workdir, flow_environment(settings, 0, tail=False))
    try:
        return process.wait(timeout=timeout)
    finally:
        stop(process)


def trace_dir(workdir: Path) -> Path:
    return workdir / "tracemalloc"


def _start(
    settings: Settings, workdir: Path, env: dict[str, str], runner: tuple[str, ...] = ("-m", "bytewax.run")
) -> subprocess.Popen:
    command = flow_command(settings, workdir / "recovery", runner)
    # Output to a file (appended over both runs): an unread pipe that fills up would block the flow.
    with open(flow_log_path(workdir), "ab") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)


def flow_log_path(workdir: Path) -> Path:
    return workdir / "flow.log"


def flow_log_tail(workdir: Path) -> str:
    return flow_log_path(workdir).read_text(errors="replace")[-3000:]


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C, as an operator would (the flow drains and commits what it holds, k2.ops.stopping); killed if it does
    not end in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
