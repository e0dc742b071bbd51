"""kill -9 the ingest process in the middle of its work, again and again, then check every table is exact.

Real broker, real process (`python -m bytewax.run flows.ingest` with recovery on, as production runs it), real
warehouse. The feed comes from another producer (tests.fixtures.foreign_feed) with invalid messages, sequence
gaps and exact redeliveries, and its delivery reports are the oracle: every Kafka position must end as exactly
one row, one dead letter (with its reason) or one counted duplicate, every gap of the feed as exactly one
sequence-gap row, and every dead letter in the DLQ topic at least once.

Each kill waits for evidence that it lands mid-work, read from the process's own traces (K2_TRACE_FILE, one JSON
line per finished span) and log: after it buffered messages, right after an epoch snapshot that left a commit in
flight (between a snapshot and its commit), some time after a commit, or while it commits again what a recovery
state held. Once the recovery state is deleted, so the restart must rebuild from the Iceberg seams alone.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from k2.flow.recovery import ensure_recovery_store, flow_command
from k2.ops.config import load_settings
from tests.fixtures.foreign_feed import ForeignFeed, assert_exact, flow_env

ROOT = Path(__file__).resolve().parents[2]
MID_WORK_KILLS = 10
# What each run waits for before its kill, in turn (see `wait_for` for kills during recovery). "held": the catalog
# is locked until a commit is stuck and an epoch's state holding it is stored; the next run must then commit it again
# from that state, and is killed while it does (a kill during recovery every time, not by chance).
PLAN = ("buffered", "snapshot", "committed", "held", "buffered", "snapshot", "committed")
RECOVERY_KILL_SHARE = 0.3
MAX_KILLS = 30
EVIDENCE_TIMEOUT = 30.0


@dataclass
class Kill:
    target: str
    buffered: bool = False  # the process had read and buffered messages
    between_snapshot_and_commit: bool = False
    during_recovery: bool = False
    commits: int = 0


@dataclass
class Run:
    """One flow process: its pid, where its spans and log lines are, and what it has shown so far."""

    process: subprocess.Popen
    trace: Path
    log: Path
    catalog: Path
    offset: int = 0
    spans: list[dict] = field(default_factory=list)
    locked: sqlite3.Connection | None = None  # the catalog's write lock, while a "held" kill holds it

    def poll_spans(self) -> list[dict]:
        """This process's spans finished since the last call (whole lines only)."""
        if not self.trace.exists():
            return []
        with open(self.trace, "rb") as file:
            file.seek(self.offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        new = [json.loads(line) for line in complete.splitlines() if line.strip()]
        mine = [span for span in new if span.get("pid") == self.process.pid]
        self.spans += mine
        return mine

    def logged(self, text: str) -> bool:
        return self.log.exists() and text in self.log.read_text(errors="replace")


def _attr(span: dict, key: str, default: object = None) -> object:
    return span.get("attributes", {}).get(f"k2.{key}", default)


def start(env: dict[str, str], recovery: Path, tmp_path: Path, number: int, workers: int) -> Run:
    ensure_recovery_store(recovery)
    command = [*flow_command(load_settings(env, snapshot_seconds=1), recovery), "-w", str(workers)]
    log = tmp_path / f"flow-{number}.log"
    with open(log, "wb") as stderr:  # a file: an unread pipe that fills up would block the flow
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    return Run(process, Path(env["K2_TRACE_FILE"]), log, Path(env["K2_DATA_DIR"]) / "catalog.db")


def wait_for(run: Run, target: str, rng: random.Random) -> bool:
    """Wait until `run` shows the evidence `target` needs (then its delay); False if the process ended first.

    Whatever the target, a run that starts by committing again what its recovery state held (the state of an
    epoch whose commit had not landed) is mostly killed right then, during its recovery."""
    deadline = time.monotonic() + EVIDENCE_TIMEOUT
    kill_in_recovery = rng.random() < RECOVERY_KILL_SHARE
    while time.monotonic() < deadline:
        if run.process.poll() is not None:
            return False
        if (kill_in_recovery or target == "recovery") and run.logged("recovering a commit"):
            run.poll_spans()
            if not any(span["name"] == "recovery" for span in run.spans):
                return True
        for span in run.poll_spans():
            if target in ("buffered", "recovery") and span["name"] == "buffer":  # no recovery came: a plain kill
                time.sleep(rng.uniform(0, 0.3))
                return True
            if target == "snapshot" and span["name"] == "snapshot" and _attr(span, "pending_commits", 0) > 0:
                # Soon, not at once: Bytewax stores the epoch's state just after this span, and a restart resumes
                # from the last stored epoch; the commit left in flight takes a hundred ms or more.
                time.sleep(rng.uniform(0.02, 0.06))
                return True
            if target == "held" and span["name"] == "commit" and _attr(span, "table") == "trades":
                return hold_a_commit(run)
            if target == "committed" and span["name"] == "commit":
                time.sleep(rng.uniform(0, 0.6))
                return True
        time.sleep(0.005)
    raise AssertionError(
        f"no evidence for a {target!r} kill within {EVIDENCE_TIMEOUT} s: {run.log.read_text()[-2000:]}"
    )


def hold_a_commit(run: Run) -> bool:
    """Lock the catalog (as another writer holding SQLite's write lock would) until the flow's commit is stuck and an
    epoch's state holding it has been stored; the caller kills the flow, then `release_catalog` lets it go."""
    catalog = sqlite3.connect(run.catalog, isolation_level=None, timeout=30)
    catalog.execute("BEGIN EXCLUSIVE")
    run.locked = catalog
    deadline = time.monotonic() + EVIDENCE_TIMEOUT
    while time.monotonic() < deadline and run.process.poll() is None:
        if run.logged("database is locked"):  # a commit is stuck; the next epoch end waits for it
            time.sleep(1.5)  # so the epoch state stored last is the one that handed that commit over
            return True
        time.sleep(0.01)
    raise AssertionError(f"no commit got stuck behind the locked catalog: {run.log.read_text()[-2000:]}")


def release_catalog(run: Run) -> None:
    if run.locked is not None:
        run.locked.execute("COMMIT")
        run.locked.close()


def classify(run: Run, target: str) -> Kill:
    """What the killed process had done, from its own spans and log (read after the kill)."""
    time.sleep(0.05)
    run.poll_spans()
    kill = Kill(target)
    kill.buffered = any(span["name"] == "buffer" for span in run.spans)
    kill.commits = sum(1 for span in run.spans if span["name"] in ("commit", "recovery"))
    snapshots = [s for s in run.spans if s["name"] == "snapshot" and _attr(s, "pending_commits", 0) > 0]
    if snapshots:
        last = snapshots[-1]
        kill.between_snapshot_and_commit = not any(
            span["name"] == "commit" and span["end_ns"] > last["end_ns"] for span in run.spans
        )
    recovered = sum(1 for span in run.spans if span["name"] == "recovery")
    kill.during_recovery = run.logged("recovering a commit") and recovered < run.log.read_text().count(
        "recovering a commit"
    )
    return kill


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_mid_work_loses_and_repeats_nothing_in_any_table(tmp_path, kafka_bootstrap, kafka_topic, workers):
    trades, quotes, dlq = kafka_topic(3, prefix="trades"), kafka_topic(3, prefix="quotes"), kafka_topic(1, prefix="dlq")
    # Enough for the kills a run of this test needs (10-13 so far): a run commits ~250,000 messages before its kill,
    # now that the flow reads ~400k msg/s (3,000,000 ran out after 12 kills at 2 workers).
    expected = ForeignFeed(messages=5_000_000).produce(kafka_bootstrap, trades, quotes)
    env = flow_env(tmp_path, kafka_bootstrap, (trades, quotes, dlq), tail=False)
    rng = random.Random(2026 + workers)
    recovery = tmp_path / "recovery"
    kills: list[Kill] = []
    plan = iter(PLAN * 10)
    while sum(k.buffered for k in kills) < MID_WORK_KILLS or not any(k.during_recovery for k in kills):
        assert len(kills) < MAX_KILLS, f"no kill during a recovery in {len(kills)} kills: {kills}"
        if len(kills) == 3 and workers == 1:
            shutil.rmtree(recovery, ignore_errors=True)  # once: no recovery state at all
        held = kills and kills[-1].target == "held" and kills[-1].between_snapshot_and_commit
        target = "recovery" if held else next(plan)
        # A stuck commit reaches an epoch's state only when the epoch end handed it over: a commit that the row
        # bound (`K2_COMMIT_MAX_ROWS`) starts mid-epoch stops the flow at the next bound, before any epoch end, while
        # it is stuck. So a "held" run commits at epoch ends only, as a flow below the bound does; so does a
        # "snapshot" run, whose epoch-end commit then carries the epoch's rows and stays in flight long enough for
        # the kill to land before it (a commit of the bound's 50,000 rows lands in ~50 ms, often before the kill).
        at_epoch_ends = target in ("held", "snapshot")
        run_env = {**env, "K2_COMMIT_MAX_ROWS": "100000000"} if at_epoch_ends else env
        run = start(run_env, recovery, tmp_path, len(kills), workers)
        reached = wait_for(run, target, rng)
        run.process.send_signal(signal.SIGKILL)
        run.process.wait()
        release_catalog(run)
        assert reached, f"the flow finished after {len(kills)} kills: make the feed larger"
        kills.append(classify(run, target))

    final = start(env, recovery, tmp_path, len(kills), workers)
    assert final.process.wait(timeout=600) == 0, final.log.read_text()[-3000:]

    print(  # the kills, for the record (pytest -s)
        f"{len(kills)} kills: {sum(k.buffered for k in kills)} after buffering, "
        f"{sum(k.between_snapshot_and_commit for k in kills)} between a snapshot and its commit, "
        f"{sum(k.during_recovery for k in kills)} during recovery, "
        f"{sum(k.buffered and not k.commits for k in kills)} before the process's first commit; "
        f"{expected.sent} messages, {len(expected.dead_letters)} invalid, {sum(expected.duplicates.values())} "
        f"redelivered, {sum(expected.gaps.values())} gaps\n" + "\n".join(map(str, kills))
    )
    settings = load_settings({}, data_dir=env["K2_DATA_DIR"], trades_topic=trades, quotes_topic=quotes)
    assert_exact(settings, expected, kafka_bootstrap, dlq, Path(env["K2_TRACE_FILE"]))
    between = sum(k.between_snapshot_and_commit for k in kills)
    assert between >= 2, f"only {between} kills fell between a snapshot and its commit: {kills}"
    assert any(k.commits == 0 and k.buffered for k in kills), f"no kill before a first commit: {kills}"
    assert any(k.between_snapshot_and_commit and k.target == "held" for k in kills), f"no held commit: {kills}"
