"""The command line (``python -m scripts.local_kafka fetch|start|status|env|stop``) and its state file.

``start`` runs a detached broker, one per state dir, that outlives the command until ``stop``; its pid and address
live in ``broker.json`` under ``K2_KAFKA_STATE_DIR`` (default ``.k2/kafka``). With ``K2_KAFKA_OWNER=PID`` (a test
driving the CLI) it still outlives the command, but dies with that process.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from scripts.local_kafka.broker import Broker
from scripts.local_kafka.common import READY_TIMEOUT_S, REPO_ROOT, STATE_NAME, BrokerError, eprint, file_lock
from scripts.local_kafka.jars import fetch, is_fetched, kafka_version
from scripts.local_kafka.start import start_broker


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
    eprint(f"Kafka {kafka_version()} jars {verb}: {lib}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    with file_lock(state_dir() / ".lock"):
        existing = load_state()
        if existing is not None and existing.is_running():
            eprint(f"broker already running (pid {existing.pid}); `stop` it to restart")
            print(existing.bootstrap)
            return 0
        if existing is not None:  # stale: the broker died without `stop`
            existing.stop()
            state_file().unlink(missing_ok=True)
        data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="data-", dir=state_dir()))
        owner = int(os.environ["K2_KAFKA_OWNER"]) if os.environ.get("K2_KAFKA_OWNER") else None
        started = time.monotonic()
        broker = start_broker(
            data_dir,
            port=args.port,
            controller_port=args.controller_port,
            ephemeral=args.data_dir is None,
            timeout=args.timeout,
            advertised_port=args.advertised_port,
            detached=owner is None,  # the dev broker outlives this command, until `stop`
            owner=owner,
        )
        save_state(broker)
    eprint(f"Kafka {kafka_version()} ready in {time.monotonic() - started:.1f}s (pid {broker.pid}, log {broker.log})")
    print(broker.bootstrap)
    return 0


def cmd_stop(_: argparse.Namespace) -> int:
    with file_lock(state_dir() / ".lock"):
        broker = load_state()
        if broker is None:
            eprint("no local broker running")
            return 0
        was_running = broker.is_running()
        broker.stop()
        state_file().unlink(missing_ok=True)
    eprint(f"stopped broker pid {broker.pid}" if was_running else "broker was not running; state cleared")
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
        eprint("no local broker running (start one with `python -m scripts.local_kafka start`)")
        return 1
    print(f"{'export ' if args.export else ''}K2_KAFKA_BOOTSTRAP={broker.bootstrap}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.local_kafka",
        description="Local Apache Kafka broker from Maven Central jars (no Docker).",
    )
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
        eprint(f"error: {exc}")
        return 1
