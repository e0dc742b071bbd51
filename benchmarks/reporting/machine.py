"""The machine the report was generated on: CPU, cores, memory, OS, Python, the libraries that do the work and the
Kafka broker version."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = (
    "bytewax",
    "pyiceberg",
    "pyiceberg-core",
    "pyarrow",
    "duckdb",
    "confluent-kafka",
    "litestar",
    "uvicorn",
    "msgspec",
    "matplotlib",
)
KAFKA_POM = ROOT / "scripts" / "kafka" / "pom.xml"


def _first(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip() if ":" in line else line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return None


def kafka_version() -> str | None:
    """The broker version the project's scripts start (pinned in the POM scripts/local_kafka fetches)."""
    try:
        for node in ElementTree.parse(KAFKA_POM).getroot().iter():
            if node.tag.endswith("kafka.version") and node.text:
                return node.text.strip()
    except (OSError, ElementTree.ParseError):
        pass
    return None


def describe() -> dict[str, object]:
    memory_kb = _first("/proc/meminfo", "MemTotal")
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": _first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory_kb.split()[0]) / 2**20, 1) if memory_kb else None,
        "os": _first("/etc/os-release", "PRETTY_NAME=") or platform.system(),
        "kernel": platform.platform(),
        "python": platform.python_version(),
        "libraries": versions,
        "kafka": kafka_version(),
    }
