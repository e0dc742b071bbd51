"""A real Confluent-compatible schema registry on loopback, without Docker: Apicurio Registry.

Apicurio Registry publishes its built application (Quarkus, a runner jar and its lib/) to Maven Central as
``io.apicurio:apicurio-registry-app:<version>:tar.gz:all``; ``fetch`` copies it with Maven into ``.cache`` and
unpacks it, once. The 2.6 line runs on Java 17 (3.x needs Java 21). It serves the Confluent API under
``/apis/ccompat/v7``, which confluent-kafka's ``SchemaRegistryClient`` and K2 use; schemas live in an H2 database
file in the data directory, so a registry stopped and started again on the same directory keeps its ids.

CLI (from the repository root)::

    uv run python -m scripts.schema_registry fetch
    uv run python -m scripts.schema_registry start [--port N] [--data-dir DIR]   # prints the URL last
    uv run python -m scripts.schema_registry env [--export]                      # K2_SCHEMA_REGISTRY_URL=...
    uv run python -m scripts.schema_registry status | stop

Library (tests/fixtures/schema_registry.py, benchmarks)::

    with running_registry(tmp_dir) as registry:   # dies with the calling process, even a killed one
        use(registry.url)

Environment: ``K2_SCHEMA_REGISTRY_CACHE`` (default .cache/schema-registry), ``K2_SCHEMA_REGISTRY_STATE_DIR``
(default .k2/schema-registry, the CLI's registry.json and data).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scripts.local_kafka.common import HOST, REPO_ROOT, eprint, file_lock
from scripts.local_kafka.processes import find_java, free_ports, pid_alive, signal_group, start_watchdog

APICURIO_VERSION = "2.6.13.Final"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"  # as pinned in scripts/kafka/pom.xml
CCOMPAT_PATH = "/apis/ccompat/v7"
JVM_OPTS = ("-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
LOG_NAME = "registry.log"
STATE_NAME = "registry.json"


class RegistryError(RuntimeError):
    """The registry could not be fetched, started or stopped."""


def cache_dir() -> Path:
    root = os.environ.get("K2_SCHEMA_REGISTRY_CACHE")
    base = Path(root).expanduser() if root else REPO_ROOT / ".cache" / "schema-registry"
    return base.resolve() / APICURIO_VERSION


def runner_jar() -> Path:
    return cache_dir() / f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"


def is_fetched() -> bool:
    return runner_jar().is_file() and (cache_dir() / "lib").is_dir()


def fetch() -> Path:
    """The registry's runner jar, copied from Maven Central and unpacked on first use."""
    if is_fetched():
        return runner_jar()
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RegistryError(f"Apicurio Registry is not cached in {cache_dir()} and Maven (mvn) is not on PATH")
    cache = cache_dir()
    cache.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(cache.parent / ".fetch.lock"):
        if is_fetched():
            return runner_jar()
        eprint(f"fetching Apicurio Registry {APICURIO_VERSION} from Maven Central into {cache} ...")
        staging = Path(tempfile.mkdtemp(prefix="fetch.", dir=cache.parent))
        try:
            command = [mvn, "-B", "-q", "-Dstyle.color=never", f"{DEPENDENCY_PLUGIN}:copy"]
            command += [f"-Dartifact={ARTIFACT}", f"-DoutputDirectory={staging}", "-Dmdep.overWriteReleases=true"]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            archives = list(staging.glob("*.tar.gz"))
            if done.returncode != 0 or len(archives) != 1:
                raise RegistryError(f"mvn could not copy {ARTIFACT}:\n{done.stdout}{done.stderr}")
            unpacked = staging / "app"
            with tarfile.open(archives[0]) as archive:
                archive.extractall(unpacked, filter="data")
            shutil.rmtree(cache, ignore_errors=True)
            unpacked.rename(cache)  # atomic: a reader never sees a half-unpacked registry
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return runner_jar()


def answers(url: str, timeout: float = 2.0) -> bool:
    """The registry answers its Confluent API (GET /subjects)."""
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Registry:
    pid: int
    port: int
    data_dir: Path
    pgid: int | None = None  # the watchdog's group for an owned registry; else its own session
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _watchdog: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{CCOMPAT_PATH}"

    @property
    def log(self) -> Path:
        return self.data_dir / LOG_NAME

    def is_running(self) -> bool:
        return pid_alive(self.pid)

    def answers(self) -> bool:
        return answers(self.url)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the registry's group (it closes its database), SIGKILL after `timeout`."""
        group = self.pgid if self.pgid is not None else self.pid
        signal_group(group, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.is_running() and time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                break
            time.sleep(0.1)
        if self.is_running():
            signal_group(group, signal.SIGKILL)
        for proc in (self._proc, self._watchdog):
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)

    def state(self) -> dict[str, object]:
        return {"pid": self.pid, "port": self.port, "data_dir": str(self.data_dir), "url": self.url}


def start_registry(
    data_dir: Path, *, port: int | None = None, owner: int | None = None, timeout: float = READY_TIMEOUT_S
) -> Registry:
    """Start a registry keeping its schemas in `data_dir` (the same directory again: the same ids). `owner`: the
    pid it dies with, even a killed one (the broker's watchdog); None: detached, it runs until stopped."""
    jar = fetch()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_ports(1)[0]
    log = data_dir / LOG_NAME
    env = dict(os.environ, REGISTRY_DATASOURCE_URL=f"jdbc:h2:file:{data_dir / 'registry'}")
    command = [find_java(), *JVM_OPTS, f"-Dquarkus.http.port={port}", f"-Dquarkus.http.host={HOST}"]
    command += ["-Dquarkus.log.console.color=false", "-jar", str(jar)]
    watchdog = None if owner is None else start_watchdog(owner, log)
    placement = {"start_new_session": True} if watchdog is None else {"process_group": watchdog.pid}
    with open(log, "ab") as log_file:
        proc = subprocess.Popen(
            command, cwd=jar.parent, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            close_fds=True, **placement,
        )  # fmt: skip
    registry = Registry(proc.pid, port, data_dir, None if watchdog is None else watchdog.pid, proc, watchdog)
    deadline = time.monotonic() + timeout
    while not registry.answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            registry.stop(timeout=5)
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise RegistryError(f"the schema registry did not come up on port {port}:\n{tail}")
        time.sleep(0.2)
    return registry


@contextlib.contextmanager
def running_registry(data_dir: Path | None = None) -> Iterator[Registry]:
    """A registry owned by this process for the block (in a temp directory unless `data_dir` is given)."""
    with contextlib.ExitStack() as stack:
        where = data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="k2-registry-")))
        registry = start_registry(where, owner=os.getpid())
        try:
            yield registry
        finally:
            registry.stop()


def _state_dir() -> Path:
    root = os.environ.get("K2_SCHEMA_REGISTRY_STATE_DIR")
    return Path(root) if root else REPO_ROOT / ".k2" / "schema-registry"


def _running() -> Registry | None:
    try:
        state = json.loads((_state_dir() / STATE_NAME).read_text())
    except (OSError, ValueError):
        return None
    registry = Registry(int(state["pid"]), int(state["port"]), Path(state["data_dir"]))
    return registry if registry.is_running() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.schema_registry", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help="copy Apicurio Registry from Maven Central into the cache")
    start = commands.add_parser("start", help="start a detached registry (prints its URL)")
    start.add_argument("--port", type=int)
    start.add_argument("--data-dir", type=Path)
    env = commands.add_parser("env", help="K2_SCHEMA_REGISTRY_URL of the running registry")
    env.add_argument("--export", action="store_true")
    commands.add_parser("status")
    commands.add_parser("stop")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(fetch())
            return 0
        running = _running()
        if args.command == "start":
            if running is None:
                running = start_registry(args.data_dir or _state_dir() / "data", port=args.port)
                (_state_dir() / STATE_NAME).write_text(json.dumps(running.state()))
            print(running.url)
        elif running is None:
            eprint("no schema registry is running (python -m scripts.schema_registry start)")
            return 0 if args.command == "stop" else 1
        elif args.command == "env":
            print(f"{'export ' if args.export else ''}K2_SCHEMA_REGISTRY_URL={running.url}")
        elif args.command == "status":
            print(json.dumps(running.state()))
        else:
            running.stop()
            (_state_dir() / STATE_NAME).unlink(missing_ok=True)
    except RegistryError as exc:
        eprint(f"schema registry: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
