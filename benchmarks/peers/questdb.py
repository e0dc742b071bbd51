"""A QuestDB server (the Maven jar, a Java module) on loopback, with its data folder under the cache: start, wait
until it answers, SQL over HTTP `/exec`, clean stop (SIGTERM), and its RSS.

    java -p questdb-<v>.jar -m io.questdb/io.questdb.ServerMain -d <root>

Its config (`<root>/conf/server.conf`) binds HTTP and PG wire to 127.0.0.1 on free ports, turns off ILP over
TCP/UDP, the metrics server and telemetry, and points `cairo.sql.copy.root` (where `read_parquet` reads) at
`<root>/import`.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import free_port, rss_bytes, wait_until
from benchmarks.peers.jars import fetch, java

JVM_OPTS = ("-Xmx2g", "-XX:+UseParallelGC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")


class QuestDBError(RuntimeError):
    """QuestDB answered a query with an error."""


class QuestDB:
    def __init__(self, root: Path):
        self.root = root
        self.imports = root / "import"
        self.http_port, self.pg_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.http_port}"
        self.log = root / "questdb.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=self.base, timeout=600.0)
        self.peak_rss = 0

    def configure(self) -> None:
        (self.root / "conf").mkdir(parents=True, exist_ok=True)
        self.imports.mkdir(parents=True, exist_ok=True)
        lines = [
            f"http.bind.to=127.0.0.1:{self.http_port}",
            f"pg.net.bind.to=127.0.0.1:{self.pg_port}",
            "http.min.enabled=false",
            "line.tcp.enabled=false",
            "line.udp.enabled=false",
            "telemetry.enabled=false",
            f"cairo.sql.copy.root={self.imports}",
            "",
        ]
        (self.root / "conf" / "server.conf").write_text("\n".join(lines))

    def start(self, timeout: float = 120.0) -> QuestDB:
        self.configure()
        jar = next(fetch("questdb").glob("questdb-*.jar"))
        command = [java(), *JVM_OPTS, "-p", str(jar), "-m", "io.questdb/io.questdb.ServerMain", "-d", str(self.root)]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        if not wait_until(self._answers, timeout, pause=0.2):
            self.stop()
            raise RuntimeError(f"QuestDB did not answer within {timeout:.0f} s: see {self.log}")
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"QuestDB exited with {self.process.returncode}: see {self.log}")
        try:
            return self.client.get("/exec", params={"query": "SELECT 1"}).status_code == 200
        except httpx.TransportError:
            return False

    def sql(self, query: str) -> dict[str, Any]:
        """One statement through HTTP /exec; the JSON answer (columns, dataset, count), or QuestDBError."""
        answer = self.client.get("/exec", params={"query": query}).json()
        if "error" in answer:
            raise QuestDBError(f"{answer['error']} in: {query}")
        if self.process is not None:
            self.peak_rss = max(self.peak_rss, rss_bytes(self.process.pid))
        return answer

    def rows(self, query: str) -> list[list[Any]]:
        return self.sql(query)["dataset"]

    def stop(self, timeout: float = 60.0) -> None:
        self.client.close()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> QuestDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
