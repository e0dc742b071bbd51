"""What the benchmarks that run the ingest flow on a real broker share: the flow process's environment and command
(as scripts/ingest.sh runs it), the topics it reads, and when its commits landed (each snapshot's seam).

The broker itself comes from `benchmarks.kafka_ingest.broker` (K2_KAFKA_BOOTSTRAP, else scripts.local_kafka).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

from k2.flow.recovery import ensure_recovery_store
from k2.flow.recovery import flow_command as flow_command_for
from k2.kafka.admin import ensure_topics
from k2.ops.config import load_settings
from k2.storage.catalog import TRADES, open_catalog
from k2.storage.seams import OFFSETS_PROPERTY

PARTITIONS = 4


def topics_of(topic: str) -> list[str]:
    """The trades topic and the quotes and dead-letter topics `flow_env` names after it."""
    return [topic, f"{topic}-quotes", f"{topic}-dlq"]


def make_topics(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    ensure_topics(bootstrap, topics_of(topic), partitions=partitions)


def flow_env(bootstrap: str, topic: str, data_dir: str | Path, tail: bool) -> dict[str, str]:
    """This process's environment plus the flow's broker, topics (`topics_of`), data directory and a 1 s epoch
    unless K2_EPOCH_SECONDS says otherwise."""
    return {
        **os.environ,
        "K2_SOURCE": "kafka",
        "K2_KAFKA_BOOTSTRAP": bootstrap,
        "K2_TRADES_TOPIC": topic,
        "K2_QUOTES_TOPIC": f"{topic}-quotes",
        "K2_DLQ_TOPIC": f"{topic}-dlq",
        "K2_KAFKA_TAIL": str(tail).lower(),
        "K2_DATA_DIR": str(data_dir),
        "K2_EPOCH_SECONDS": os.environ.get("K2_EPOCH_SECONDS", "1.0"),
    }


def flow_command(data_dir: str | Path, env: dict[str, str]) -> list[str]:
    """The flow as `scripts/ingest.sh` runs it in production: Bytewax recovery on (its store under `data_dir`),
    snapshots every K2_SNAPSHOT_SECONDS (the sink's pending rows are serialised into the recovery store each time)."""
    recovery = Path(data_dir) / "recovery"
    ensure_recovery_store(recovery)
    return flow_command_for(load_settings(env), recovery)


def snapshot_seams(table: Table) -> list[tuple[float, dict[str, int]]]:
    """(commit time in s, the seam it recorded) of every snapshot of a table, oldest first; {} for a snapshot that
    records none (maintenance)."""
    return [
        (s.timestamp_ms / 1000, json.loads(s.summary.additional_properties.get(OFFSETS_PROPERTY, "{}")))
        for s in table.snapshots()
    ]


def trade_seams(data_dir: str | Path) -> list[tuple[float, dict[str, int]]]:
    """`snapshot_seams` of the trades table a flow writes under `data_dir` (none before the flow has created it:
    this process only reads, so it never races the flow to create the tables)."""
    settings = load_settings({}, data_dir=str(data_dir))
    try:
        table = open_catalog(settings).load_table((settings.namespace, TRADES))
    except NoSuchTableError:
        return []
    return snapshot_seams(table)


def committed_at(commits: list[tuple[float, dict[str, int]]], topic: str, partition: int, offset: int) -> float | None:
    """When the message at `offset` was committed: the time of the first commit whose seam passes it."""
    key = f"{topic}/{partition}"
    return next((at for at, seam in commits if seam.get(key, 0) > offset), None)
