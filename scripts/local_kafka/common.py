"""What every part of local_kafka shares: paths, limits, the error type, stderr progress and the file lock."""

from __future__ import annotations

import contextlib
import fcntl
import sys
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
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


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped."""


def eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


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
