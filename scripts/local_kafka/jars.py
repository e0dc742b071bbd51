"""The broker's jars: fetched once from Maven Central (``scripts/kafka/pom.xml``), then reused from the cache offline.

``K2_KAFKA_CACHE`` moves the cache root (default ``.cache/kafka``); the jars go to ``<root>/<version>/lib``.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from scripts.local_kafka.common import FETCH_MARKER, LOG4J_CONFIG, POM, REPO_ROOT, BrokerError, eprint, file_lock

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def kafka_version() -> str:
    """The Kafka version pinned in the POM (single source of truth)."""
    node = ET.parse(POM).getroot().find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise BrokerError(f"no <kafka.version> property in {POM}")
    return node.text.strip()  # type: ignore[union-attr]


def cache_dir() -> Path:
    root = os.environ.get("K2_KAFKA_CACHE")
    base = Path(root).expanduser() if root else REPO_ROOT / ".cache" / "kafka"
    return base.resolve() / kafka_version()


def lib_dir() -> Path:
    return cache_dir() / "lib"


def classpath() -> str:
    return str(lib_dir() / "*")  # JVM class-path wildcard: every jar in lib/


def logging_opts() -> list[str]:
    return [f"-Dlog4j2.configurationFile={LOG4J_CONFIG}"]


def _pom_digest() -> str:
    # The marker stores the POM hash, so editing the POM (e.g. log4j bump) refetches.
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def is_fetched() -> bool:
    marker = cache_dir() / FETCH_MARKER
    return marker.is_file() and marker.read_text().strip() == _pom_digest() and any(lib_dir().glob("kafka_2.13-*.jar"))


def fetch() -> Path:
    """Copy the broker's runtime jars into the cache (no-op when already there)."""
    lib = lib_dir()
    if is_fetched():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(f"Kafka jars are not cached in {lib} and Maven (mvn) is not on PATH to fetch them")
    cache = cache_dir()
    with file_lock(cache / ".fetch.lock"):
        if is_fetched():  # another process fetched while we waited for the lock
            return lib
        eprint(f"fetching Kafka {kafka_version()} jars from Maven Central into {lib} ...")
        staging = Path(tempfile.mkdtemp(prefix="lib.", dir=cache))
        try:
            run_maven(mvn, staging)
            shutil.rmtree(lib, ignore_errors=True)
            staging.rename(lib)  # atomic: a reader never sees a half-filled lib/
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        (cache / FETCH_MARKER).write_text(_pom_digest() + "\n")
    return lib


def run_maven(mvn: str, output_dir: Path, pom: Path = POM) -> None:
    """Copy the runtime jars a POM names into `output_dir` (also the benchmark peers' fetch)."""
    cmd = [
        mvn,
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={output_dir}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            f"Maven fetch failed (exit {result.returncode}): {shlex.join(cmd)}\n{result.stdout}{result.stderr}"
        )
