"""What the soak records: the processes' resident memory twice a second, the ingest lag and query latency every few."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from k2.kafka.admin import partitions_of, watermarks
from k2.model.batch import position_key
from k2.ops.config import Settings
from k2.ops.memory import rss_bytes
from k2.storage.catalog import DEAD_LETTERS, QUOTES, SEQUENCE_GAPS, TRADES, open_catalog
from k2.storage.seams import committed_offsets
from tests.soak.load import PacedProducer, QueryLog, SoakThread


def rss_kib(pid: int) -> int:
    """Resident set size of a live process, in KiB."""
    return rss_bytes(pid) // 1024


def child_pid(*argv: str) -> int:
    """The pid of this process's child whose command line contains `argv` in order (e.g. "-m", "api")."""
    wanted = "\0".join(argv).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if ppid == os.getpid() and wanted in cmdline:
            return int(entry.name)
    raise LookupError(f"no child process running {' '.join(argv)}")


class LagProbe:
    """Ingest lag in messages: the broker's high watermarks minus what Iceberg has committed (the seams).

    `data` is what a committed query cannot see yet (each partition against its own table: trades or quotes);
    `committed` is against the lowest seam of all four tables, i.e. what a restart without recovery state would
    read again (the side tables commit less often, so it runs higher).
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.partitions = partitions_of(settings.kafka_bootstrap, [settings.trades_topic, settings.quotes_topic])
        catalog = open_catalog(settings)
        self.tables = {name: catalog.load_table((settings.namespace, name)) for name in (TRADES, QUOTES)}
        self.tables |= {name: catalog.load_table((settings.namespace, name)) for name in (DEAD_LETTERS, SEQUENCE_GAPS)}

    def high_watermarks(self) -> dict[str, int]:
        return {key: high for key, (_, high) in watermarks(self.settings.kafka_bootstrap, self.partitions).items()}

    def seams(self) -> dict[str, dict[str, int]]:
        self.tables = {name: table.refresh() for name, table in self.tables.items()}
        return {name: committed_offsets(table) for name, table in self.tables.items()}

    def lag(self) -> tuple[int, int]:
        """(data lag, committed lag), each summed over partitions."""
        highs = self.high_watermarks()  # first: the seams read after it are at least as new
        seams = self.seams()
        data = committed = 0
        for topic, partition in self.partitions:
            key = position_key(topic, partition)
            own = TRADES if topic == self.settings.trades_topic else QUOTES
            data += highs[key] - seams[own].get(key, 0)
            committed += highs[key] - min(seam.get(key, 0) for seam in seams.values())
        return data, committed


@dataclass(frozen=True)
class FlowMetrics:
    """What the flow's own Prometheus endpoint says (K2_METRICS_PORT)."""

    consumer_lag: int  # high watermark as last fetched minus the next offset read, summed over partitions
    snapshots: int  # Iceberg snapshots over all tables after their last commit
    commits: int  # commits so far, all tables
    commit_seconds: float  # their total duration


def scrape_flow_metrics(url: str) -> FlowMetrics:
    values = {"lag": 0.0, "snapshots": 0.0, "count": 0.0, "sum": 0.0}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            if sample.name == "k2_kafka_consumer_lag_messages":
                values["lag"] += sample.value
            elif sample.name == "k2_iceberg_snapshots":
                values["snapshots"] += sample.value
            elif sample.name == "k2_iceberg_commit_duration_seconds_count":
                values["count"] += sample.value
            elif sample.name == "k2_iceberg_commit_duration_seconds_sum":
                values["sum"] += sample.value
    return FlowMetrics(int(values["lag"]), int(values["snapshots"]), int(values["count"]), values["sum"])


@dataclass
class Sample:
    t: float  # seconds since the load started
    sent: int  # messages produced so far
    flow_rss_kib: int
    api_rss_kib: int
    data_lag: int
    committed_lag: int
    consumer_lag: int  # from the flow's metrics
    snapshots: int  # Iceberg snapshots over all tables (nothing expires them during the soak)
    commit_ms: float | None  # mean Iceberg commit time in this sample's interval
    queries: int  # in this sample's interval
    query_failures: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def percentiles_ms(seconds: list[float]) -> tuple[float, float, float] | tuple[None, None, None]:
    if not seconds:
        return None, None, None
    p50, p95, p99 = np.percentile(np.array(seconds) * 1_000, [50, 95, 99])
    return round(float(p50), 2), round(float(p95), 2), round(float(p99), 2)


class Periodic(SoakThread):
    """Calls `tick` every `every` seconds at a fixed cadence (the time a tick takes does not stretch the series)
    until `stop`; an error ends the thread and is kept in `error`."""

    def __init__(self, name: str, every: float):
        super().__init__(name)
        self.every = every

    def run(self) -> None:
        try:
            due = time.monotonic()
            while True:
                due += self.every
                if self._stopping.wait(max(0.0, due - time.monotonic())):
                    return
                self.tick()
        except BaseException as exc:
            self.error = exc

    def tick(self) -> None:
        raise NotImplementedError


class RssSampler(Periodic):
    """Every `every` seconds: the time and the RSS of each of `pids` (name -> pid), into `t` and `kib[name]`.

    Separate from `Sampler` and much more frequent: reading /proc costs microseconds, while a lag sample reads
    four tables' metadata from the catalog. The RSS verdict needs many samples per allocator swing (60-100 s)."""

    def __init__(self, every: float, pids: dict[str, int], started: float):
        super().__init__("soak-rss-sampler", every)
        self.pids, self.started = pids, started
        self.t: list[float] = []
        self.kib: dict[str, list[int]] = {name: [] for name in pids}

    def tick(self) -> None:
        values = {name: rss_kib(pid) for name, pid in self.pids.items()}
        self.t.append(round(time.monotonic() - self.started, 3))
        for name, value in values.items():
            self.kib[name].append(value)

    def to_dict(self) -> dict:
        return {"t": self.t, **{f"{name}_kib": values for name, values in self.kib.items()}}


class Sampler(Periodic):
    """Every `every` seconds: one `Sample`."""

    def __init__(
        self,
        every: float,
        flow_pid: int,
        api_pid: int,
        probe: LagProbe,
        metrics_url: str,
        producer: PacedProducer,
        queries: QueryLog,
        started: float,
    ):
        super().__init__("soak-sampler", every)
        self.flow_pid, self.api_pid = flow_pid, api_pid
        self.probe, self.metrics_url = probe, metrics_url
        self.producer, self.queries, self.started = producer, queries, started
        self.samples: list[Sample] = []
        self._seen_queries = 0
        self._commits = (0, 0.0)  # commits and their seconds as of the previous sample

    def tick(self) -> None:
        self.samples.append(self.sample())

    def sample(self) -> Sample:
        data_lag, committed_lag = self.probe.lag()
        flow = scrape_flow_metrics(self.metrics_url)
        commits, commit_seconds = flow.commits - self._commits[0], flow.commit_seconds - self._commits[1]
        self._commits = (flow.commits, flow.commit_seconds)
        recent = self.queries.since(self._seen_queries)
        self._seen_queries += len(recent)
        p50, p95, p99 = percentiles_ms([r.seconds for r in recent if r.status == 200])
        return Sample(
            t=round(time.monotonic() - self.started, 3),
            sent=self.producer.sent,
            flow_rss_kib=rss_kib(self.flow_pid),
            api_rss_kib=rss_kib(self.api_pid),
            data_lag=data_lag,
            committed_lag=committed_lag,
            consumer_lag=flow.consumer_lag,
            snapshots=flow.snapshots,
            commit_ms=round(commit_seconds / commits * 1_000, 2) if commits else None,
            queries=len(recent),
            query_failures=sum(1 for r in recent if r.status != 200),
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_p99_ms=p99,
        )
