"""The query benchmark's API side: `python -m api` as a child process on a free loopback port (`ApiServer`), point
queries from concurrent keep-alive clients (`load`), and what benchmarks/query.py reports of it (`measure_api`):
start-up, latency at 1 and at N clients against the same load on /health, rows against the engine's, RSS and CPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import ROOT, cpu_seconds, free_port, proc_status, wait_idle, wait_until
from benchmarks.query_methods import LIMIT, summary

API_KEY = "bench-query-key"


class ApiServer:
    """`python -m api` as a child process on a free loopback port, stopped on exit whatever happens."""

    def __init__(self, data_dir: Path, log_path: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
        env |= {
            "K2_DATA_DIR": str(data_dir),
            "K2_API_HOST": "127.0.0.1",
            "K2_API_PORT": str(self.port),
            "K2_API_KEYS": API_KEY,
            "K2_API_RATE_LIMIT": "0",
            "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        }
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds until /ready answers 200; raises when the API exits first or is not ready within `timeout`."""
        started = time.perf_counter()
        with httpx.Client(base_url=self.base, timeout=5.0) as client:

            def ready() -> bool:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the API exited with {self.process.returncode}; see {self.log_path}")
                try:
                    return client.get("/ready").status_code == 200
                except httpx.TransportError:
                    return False

            if wait_until(ready, timeout, pause=0.1):
                return time.perf_counter() - started
        raise RuntimeError(f"the API was not ready within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def _point_params(c) -> dict[str, Any]:
    return {"symbol": c[0], "start": str(c[1]), "end": str(c[2])}


def load(
    base: str, choices: list, clients: int, total: int, path: str = "/v1/trades"
) -> tuple[list[float], float, int]:
    """`clients` threads, each with its own keep-alive connection, issue `total` point queries between them
    (with `path="/health"`, the same requests to the route that does no work: the floor of the HTTP stack)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures = [0] * clients
    barrier = threading.Barrier(clients + 1)

    def worker(k: int) -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": API_KEY}, timeout=60.0) as client:
            client.get(path, params=_point_params(choices[k % len(choices)]))  # open the connection
            barrier.wait()
            for i in range(k, total, clients):
                started = time.perf_counter()
                response = client.get(path, params=_point_params(choices[i % len(choices)]))
                latencies[k].append(time.perf_counter() - started)
                failures[k] += response.status_code != 200

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return [s for per in latencies for s in per], elapsed, sum(failures)


def measure_api(data_dir: Path, choices: list, clients: int, total: int, engine_rows: list[int], log) -> dict:
    result: dict[str, Any] = {}
    with ApiServer(data_dir, data_dir / "api.log") as server:
        result["startup_to_ready_s"] = round(server.wait_ready(), 2)
        result["warmup_idle_wait_s"] = round(wait_idle(server.process.pid, timeout=300), 2)
        result["rss_idle_bytes"] = proc_status(server.process.pid)["VmRSS"]
        # Warm up, and check the API answers what the engine answered for the same queries.
        api_rows = []
        with httpx.Client(base_url=server.base, headers={"X-API-Key": API_KEY}, timeout=60.0) as client:
            for c in choices[: min(20, len(choices))]:
                response = client.get("/v1/trades", params={**_point_params(c), "limit": LIMIT})
                response.raise_for_status()
                api_rows.append(response.json()["meta"]["count"])
        result["rows_match_engine"] = api_rows == engine_rows[: len(api_rows)]
        single, elapsed, failures = load(server.base, choices, 1, len(choices))
        result["one_client"] = summary(single) | {"requests_per_s": round(len(single) / elapsed, 1)}
        log(f"  API, 1 client: {result['one_client']}")
        many, elapsed, failures_many = load(server.base, choices, clients, total)
        result["concurrent"] = summary(many) | {"clients": clients, "requests_per_s": round(len(many) / elapsed, 1)}
        # The same load on /health (no query, no data): what the HTTP stack and this client cost on this machine.
        floor, elapsed, failures_floor = load(server.base, choices, clients, total, path="/health")
        result["health_floor"] = summary(floor) | {"clients": clients, "requests_per_s": round(len(floor) / elapsed, 1)}
        failures_many += failures_floor
        result["failures"] = failures + failures_many
        status = proc_status(server.process.pid)
        result["rss_after_bytes"] = status["VmRSS"]
        result["rss_peak_bytes"] = status["VmHWM"]
        result["server_cpu_seconds"] = round(cpu_seconds(server.process.pid), 1)
    return result
