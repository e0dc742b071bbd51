"""Kafka Connect standalone with the Apache Iceberg sink, on K2's local broker: its configuration, start, clean
stop (SIGTERM) and crash (SIGKILL), and the Iceberg table it writes, read with pyiceberg.

The sink writes through Iceberg's JDBC catalog on SQLite beside a local warehouse folder. The table is created
up front with pyiceberg in the same catalog (the same SQLite tables Java's JdbcCatalog uses), with K2's exact
types where the sink can fill them: prices and quantities decimal(18,8) (the sink parses the JSON strings exactly),
times as long microseconds (the sink would read a number bound for a timestamptz column as milliseconds).
Messages are schemaless JSON (JsonConverter, schemas.enable=false), keys plain strings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from pyiceberg.catalog import load_catalog
from pyiceberg.schema import Schema
from pyiceberg.table import StaticTable, Table
from pyiceberg.types import DecimalType, LongType, NestedField, StringType

from benchmarks.common import free_port, rss_bytes, wait_until
from benchmarks.peers.jars import fetch, java
from k2.kafka.admin import ensure_topics

CATALOG = "iceberg"  # the sink's catalog name (iceberg.catalog), also the JDBC catalog_name column
NAMESPACE = "peer"
TABLE = "trades"
PRICE = DecimalType(18, 8)
# The sink's table: K2's trade fields as the sink's JSON converter writes them (times as µs longs), all optional.
COLUMNS = (
    ("exchange", StringType()),
    ("symbol", StringType()),
    ("asset_class", StringType()),
    ("timestamp", LongType()),
    ("currency", StringType()),
    ("trade_id", StringType()),
    ("price", PRICE),
    ("quantity", PRICE),
    ("side", StringType()),
    ("ingestion_timestamp", LongType()),
    ("source_sequence", LongType()),
)
SCHEMA = Schema(*(NestedField(i, name, kind, required=False) for i, (name, kind) in enumerate(COLUMNS, 1)))
DEFAULT_COMMIT_INTERVAL_MS = 300_000  # the sink's own default (iceberg.control.commit.interval-ms)
JVM_OPTS = ("-Xmx1g", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
LOG4J = Path(__file__).resolve().parents[2] / "scripts" / "kafka" / "log4j2.properties"


class SinkWarehouse:
    """The peer's catalog (SQLite) and warehouse folder under `root`, and its one table."""

    def __init__(self, root: Path):
        self.root = root
        self.catalog_db = root / "catalog.db"
        self.warehouse = root / "warehouse"

    def create(self) -> None:
        self.warehouse.mkdir(parents=True, exist_ok=True)
        catalog = load_catalog(
            CATALOG, type="sql", uri=f"sqlite:///{self.catalog_db}", warehouse=f"file://{self.warehouse}"
        )
        catalog.create_namespace_if_not_exists(NAMESPACE)
        catalog.create_table((NAMESPACE, TABLE), SCHEMA, properties={"format-version": "2"})

    def metadata_location(self) -> str | None:
        """The table's current metadata file, read straight from the JDBC catalog's row (Java commits it)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.catalog_db}?mode=ro", uri=True, timeout=30)) as db:
            row = db.execute(
                "SELECT metadata_location FROM iceberg_tables WHERE table_namespace = ? AND table_name = ?",
                (NAMESPACE, TABLE),
            ).fetchone()
        return row[0] if row else None

    def table(self) -> Table:
        location = self.metadata_location()
        if location is None:
            raise RuntimeError(f"no {NAMESPACE}.{TABLE} in {self.catalog_db}")
        return StaticTable.from_metadata(location)

    def committed_rows(self) -> int:
        snapshot = self.table().current_snapshot()
        return int(snapshot.summary.additional_properties.get("total-records", 0)) if snapshot else 0


def worker_properties(bootstrap: str, root: Path, port: int) -> str:
    return "\n".join(
        [
            f"bootstrap.servers={bootstrap}",
            f"listeners=http://127.0.0.1:{port}",
            "key.converter=org.apache.kafka.connect.storage.StringConverter",
            "value.converter=org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable=false",
            f"offset.storage.file.filename={root / 'connect.offsets'}",
            "plugin.discovery=only_scan",
            # An idle sink task is polled with a timeout up to the next offset flush (60 s by default), and the
            # Iceberg sink answers the coordinator's commit request only from put(): without this, a backlog's
            # last records wait up to a minute for their commit (apache/iceberg#17811 is the same stall).
            "offset.flush.interval.ms=1000",
            "",
        ]
    )


def sink_properties(topic: str, control_topic: str, warehouse: SinkWarehouse, commit_interval_ms: int) -> str:
    return "\n".join(
        [
            # One connector (and so consumer groups) per warehouse: a restart on the same one resumes from its
            # committed offsets; another run on the same topic starts from the beginning.
            f"name=iceberg-sink-{warehouse.root.name}",
            "connector.class=org.apache.iceberg.connect.IcebergSinkConnector",
            "tasks.max=1",
            f"topics={topic}",
            f"iceberg.tables={NAMESPACE}.{TABLE}",
            f"iceberg.catalog={CATALOG}",
            "iceberg.catalog.catalog-impl=org.apache.iceberg.jdbc.JdbcCatalog",
            f"iceberg.catalog.uri=jdbc:sqlite:{warehouse.catalog_db}",
            f"iceberg.catalog.warehouse=file://{warehouse.warehouse}",
            f"iceberg.control.topic={control_topic}",
            f"iceberg.control.commit.interval-ms={commit_interval_ms}",
            "consumer.override.auto.offset.reset=earliest",
            "",
        ]
    )


class ConnectWorker:
    """One Connect standalone JVM running the sink; `stop()` is SIGTERM (Connect's clean shutdown), `kill()` is
    SIGKILL. Its log is `root/connect.log`."""

    def __init__(self, bootstrap: str, topic: str, root: Path, commit_interval_ms: int):
        self.bootstrap, self.topic, self.root = bootstrap, topic, root
        self.warehouse = SinkWarehouse(root)
        self.commit_interval_ms = commit_interval_ms
        self.control_topic = f"{topic}-{root.name}-control"  # one per warehouse, as the connector name
        self.log = root / "connect.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0

    def prepare(self) -> None:
        """The table and the control topic (the sink's coordinator and workers talk through it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.warehouse.catalog_db.exists():
            self.warehouse.create()
        ensure_topics(self.bootstrap, [self.control_topic], partitions=1)
        (self.root / "worker.properties").write_text(worker_properties(self.bootstrap, self.root, free_port()))
        sink = sink_properties(self.topic, self.control_topic, self.warehouse, self.commit_interval_ms)
        (self.root / "sink.properties").write_text(sink)

    def command(self) -> list[str]:
        lib = fetch("connect")
        return [
            java(),
            *JVM_OPTS,
            f"-Dlog4j2.configurationFile={LOG4J}",
            "-cp",
            str(lib / "*"),
            "org.apache.kafka.connect.cli.ConnectStandalone",
            str(self.root / "worker.properties"),
            str(self.root / "sink.properties"),
        ]

    def start(self) -> ConnectWorker:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def sample_rss(self) -> int:
        if self.alive():
            self.peak_rss = max(self.peak_rss, rss_bytes(self.pid))
        return self.peak_rss

    def wait_rows(self, rows: int, timeout: float, pause: float = 0.1) -> bool:
        """Until the table has committed `rows` rows (sampling the JVM's RSS meanwhile); False on timeout."""

        def committed() -> bool:
            self.sample_rss()
            if not self.alive():
                raise RuntimeError(f"Connect exited {self.process.returncode}: see {self.log}")
            return self.warehouse.metadata_location() is not None and self.warehouse.committed_rows() >= rows

        return wait_until(committed, timeout, pause)

    def stop(self, timeout: float = 30.0) -> None:
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

    def __enter__(self) -> ConnectWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        time.sleep(0)
