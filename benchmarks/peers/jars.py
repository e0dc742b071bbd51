"""Each peer's jars, fetched once from Maven Central with the POM beside this file and then reused offline from
``.cache/peers/<peer>/<POM digest>/lib`` (``K2_PEERS_CACHE`` moves the root), as the broker's jars are.

    uv run python -m benchmarks.peers.jars fetch        # both peers; `make peers-fetch`
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from scripts.local_kafka.common import BrokerError, file_lock
from scripts.local_kafka.jars import run_maven

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PEERS = ("connect", "questdb")
MARKER = ".fetched"


class MissingTool(RuntimeError):
    """Java or Maven is not installed (the peers benchmark is skipped with this message outside CI)."""


def pom(peer: str) -> Path:
    return HERE / peer / "pom.xml"


def lib_dir(peer: str) -> Path:
    root = Path(os.environ["K2_PEERS_CACHE"]).expanduser() if os.environ.get("K2_PEERS_CACHE") else ROOT / ".cache"
    digest = hashlib.sha256(pom(peer).read_bytes()).hexdigest()[:16]  # a POM edit fetches anew
    return root.resolve() / "peers" / peer / digest / "lib"


def is_fetched(peer: str) -> bool:
    return (lib_dir(peer).parent / MARKER).is_file()


def java() -> str:
    found = shutil.which("java")
    if found is None:
        raise MissingTool("Java (17+) is not on PATH: the peers run on the JVM")
    return found


def fetch(peer: str) -> Path:
    """The peer's lib folder, fetched with Maven when it is not cached yet."""
    lib = lib_dir(peer)
    if is_fetched(peer):
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingTool(f"the {peer} jars are not cached in {lib} and Maven (mvn) is not on PATH to fetch them")
    with file_lock(lib.parent / ".fetch.lock"):
        if is_fetched(peer):
            return lib
        staging = Path(tempfile.mkdtemp(prefix="lib.", dir=lib.parent))
        try:
            run_maven(mvn, staging, pom(peer))
            shutil.rmtree(lib, ignore_errors=True)
            staging.rename(lib)  # atomic: a reader never sees a half-filled lib/
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        (lib.parent / MARKER).write_text("ok\n")
    return lib


def main(argv: list[str]) -> int:
    if argv != ["fetch"]:
        print("usage: python -m benchmarks.peers.jars fetch", file=sys.stderr)
        return 2
    for peer in PEERS:
        try:
            print(f"{peer}: {fetch(peer)}", file=sys.stderr)
        except (MissingTool, BrokerError) as exc:
            print(f"{peer}: not fetched: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
