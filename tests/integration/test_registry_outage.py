"""A schema registry that goes down mid-run is not bad input: the flow waits for it (the breaker), nothing becomes a
dead letter, and once the registry is back the flow resumes and lands every message exactly once.

Real broker, the production flow as its own process, the real registry stopped (its process ended) after the flow
has landed the first messages, and messages of a schema id the flow has never seen published while it is down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from k2.formats import shipped
from k2.kafka.producer import instrument_key, publish
from k2.ops.config import load_settings
from k2.ops.reconcile import reconcile
from k2.storage.catalog import DEAD_LETTERS, QUOTES, SEQUENCE_GAPS, TRADES
from scripts.schema_registry import start_registry
from tests.fixtures.flow import read_landed
from tests.fixtures.foreign_feed import flow_env
from tests.fixtures.market import T0, trade, wire

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
WAITING = "schema_registry failed"  # the breaker's log line for each fetch the registry did not answer


def wait_for(condition, what: str, process: subprocess.Popen, log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the flow exited while waiting for {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def test_a_registry_outage_holds_the_flow_and_loses_nothing(tmp_path, kafka_bootstrap, kafka_topic, private_registry):
    trades, quotes, dlq = kafka_topic(2, prefix="outage-trades"), kafka_topic(1, prefix="q"), kafka_topic(1)
    messages = [
        trade(symbol=f"S{n % 4}", trade_id=f"t{n}", source_sequence=n // 4 + 1, timestamp=T0 + n, price=f"{n}.5")
        for n in range(400)
    ]
    client = SchemaRegistryClient({"url": private_registry.url})
    before = [shipped.serializer("avro", "trade", client, trades)(wire(m)) for m in messages[:200]]
    # Written now, while the registry is up (this registers the protobuf schema); the flow meets its id only later.
    after = [shipped.serializer("protobuf", "trade", client, trades)(wire(m)) for m in messages[200:]]
    keys = [instrument_key(wire(m)) for m in messages]
    publish(kafka_bootstrap, [(trades, key, value) for key, value in zip(keys, before, strict=False)])

    env = flow_env(tmp_path, kafka_bootstrap, (trades, quotes, dlq), tail=True)
    env |= {"K2_SCHEMA_REGISTRY_URL": private_registry.url, "K2_EPOCH_SECONDS": "0.2", "K2_LOG_FORMAT": "text"}
    settings = load_settings({}, data_dir=env["K2_DATA_DIR"], trades_topic=trades, quotes_topic=quotes)
    log = tmp_path / "flow.log"
    with open(log, "ab") as stderr:
        command = [sys.executable, "-m", "bytewax.run", "flows.ingest"]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    restarted = None
    try:

        def landed_trades() -> int:
            try:
                return read_landed(settings).tables[TRADES].num_rows
            except Exception:  # the tables do not exist before the flow's first commit
                return -1

        wait_for(lambda: landed_trades() == 200, "the first 200 trades to land", process, log)
        private_registry.stop()
        assert not private_registry.is_running() and not private_registry.answers()
        publish(kafka_bootstrap, [(trades, key, value) for key, value in zip(keys[200:], after, strict=True)])
        # The flow has read a message of the new schema id: it asks the registry, which does not answer, and waits.
        wait_for(lambda: log.read_text().count(WAITING) >= 3, "the flow to wait for the registry", process, log)
        held = read_landed(settings)
        assert held.tables[TRADES].num_rows == 200 and held.tables[DEAD_LETTERS].num_rows == 0

        restarted = start_registry(private_registry.data_dir, port=private_registry.port, owner=os.getpid())
        wait_for(lambda: landed_trades() == 400, "the flow to resume", process, log)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if restarted is not None:
            restarted.stop()

    landed = read_landed(settings)
    assert sorted(landed.tables[TRADES]["trade_id"].to_pylist()) == sorted(m["trade_id"] for m in messages)
    assert sum(landed.tables[TRADES]["price"].to_pylist()) == sum(Decimal(f"{n}.5") for n in range(400))
    assert landed.tables[DEAD_LETTERS].num_rows == 0 and landed.tables[QUOTES].num_rows == 0
    assert landed.tables[SEQUENCE_GAPS].num_rows == 0 and sum(landed.duplicates.values()) == 0
    assert all(report.balanced for report in reconcile(settings))
    assert "schema_registry recovered" in log.read_text()
