"""A slow, broken and partitioned network between the ingest flow and the broker: the final tables are exact.

A dedicated broker advertises a loopback proxy's port, so every client connection (bootstrap and the reconnects
after reading the metadata) goes through the proxy. The flow runs as a process while the test adds latency,
resets every connection, then cuts the network for 15 s and heals it. The flow may ride it out or exit; an exit
is answered with a restart (as a supervisor would), which resumes from the Iceberg seams. Either way every
message must land exactly once: the same checks as the kill -9 test, and every partition's seam at the broker's
high watermark.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

from k2.kafka.admin import ensure_topics, partitions_of, watermarks
from k2.kafka.producer import publish
from k2.loaders.synthetic import FeedConfig, SyntheticFeed
from k2.ops.config import Settings, load_settings
from k2.ops.reconcile import reconcile
from k2.storage.catalog import QUOTES, TRADES, open_catalog
from k2.storage.seams import committed_offsets
from tests.fixtures.flow import assert_landed_exactly
from tests.fixtures.kafka import private_local_broker
from tests.fixtures.net import free_port
from tests.fixtures.proxy import Mode, TcpProxy

ROOT = Path(__file__).resolve().parents[2]
TOPICS = {"trade": "market.trades", "quote": "market.quotes"}
PARTITION_SECONDS = 15.0
MAX_STARTS = 4
THROTTLE_BYTES_PER_SECOND = 400_000  # the whole link, every connection together: the partition falls mid-run


def committed(settings: Settings) -> int:
    """Messages below the seams of trades and quotes (0 before the first commit)."""
    try:
        catalog = open_catalog(settings)
        return sum(
            sum(committed_offsets(catalog.load_table((settings.namespace, n))).values()) for n in (TRADES, QUOTES)
        )
    except (NoSuchTableError, NoSuchNamespaceError):
        return 0


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def test_proxy_delays_holds_and_resets_bytes():
    """The proxy itself, against an echo server: what each mode does to a connection."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)

        def echo_once() -> None:
            conn, _ = server.accept()
            with conn, contextlib.suppress(ConnectionResetError):  # the proxy resets it at the end
                while data := conn.recv(1024):
                    conn.sendall(data)

        with TcpProxy(server.getsockname()[1]).start() as proxy:
            threading.Thread(target=echo_once, daemon=True).start()
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
                client.sendall(b"ping")
                assert client.recv(16) == b"ping"
                proxy.blackhole()
                client.sendall(b"held")
                client.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    client.recv(16)  # nothing passes while partitioned
                proxy.pass_through()
                client.settimeout(5)
                assert client.recv(16) == b"held"  # healed: the held bytes arrive, the connection survived
                proxy.delay(50)
                client.sendall(b"late")
                assert client.recv(16) == b"late"
                proxy.drop()
                with pytest.raises(ConnectionResetError):
                    client.recv(16)  # reset, not a polite close
            assert proxy.mode is Mode.DROP and proxy.stats.reset == 1


def test_proxy_throttle_caps_all_connections_together():
    """The throttle is the link's: two connections share its rate, however many a client opens."""
    payload = b"x" * 100_000
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(10)

        def sink(count: int) -> None:
            for _ in range(count):
                conn, _ = server.accept()
                threading.Thread(target=lambda c=conn: c.recv(1) and c.sendall(payload), daemon=True).start()

        with TcpProxy(server.getsockname()[1]).start() as proxy:
            proxy.throttle(200_000)
            threading.Thread(target=sink, args=(2,), daemon=True).start()
            clients = [socket.create_connection(("127.0.0.1", proxy.port), timeout=10) for _ in range(2)]
            began = time.monotonic()
            for client in clients:
                client.sendall(b"go")
            for client in clients:
                received = 0
                while received < len(payload):
                    received += len(client.recv(65536))
                client.close()
            # 200 kB at 200 kB/s: at least ~1 s (less the first chunk), where two separate caps would take 0.5 s.
            assert time.monotonic() - began >= 0.6


@pytest.mark.slow
def test_flow_survives_latency_resets_and_a_partition_exactly_once(tmp_path):
    began = time.monotonic()
    broker_port = free_port()
    with (
        TcpProxy(broker_port).start() as proxy,
        private_local_broker(tmp_path / "kafka", port=broker_port, advertised_port=proxy.port) as _broker,
    ):
        started = time.monotonic() - began
        bootstrap = proxy.address  # never the broker's own port: everything crosses the proxy
        ensure_topics(bootstrap, [*TOPICS.values(), "market.dlq"], partitions=3)
        feed = SyntheticFeed(
            FeedConfig(
                messages=200_000,
                symbols=40,
                invalid_rate=0.002,
                duplicate_rate=0.005,
                gap_rate=0.001,
                reorder_rate=0.002,
            )
        )
        publish(bootstrap, ((TOPICS[k], key, value) for k, key, value in feed.messages()))
        total = feed.stats.sent
        published = time.monotonic() - began
        # A slow link from here on, shared by all the flow's connections (one per partition): the flow needs well
        # over the chaos phase to read everything, however fast the machine, so the partition always falls mid-run.
        proxy.throttle(THROTTLE_BYTES_PER_SECOND)
        settings = load_settings({}, data_dir=str(tmp_path / "k2"), kafka_bootstrap=bootstrap)
        env = {
            **os.environ,
            "K2_SOURCE": "kafka",
            "K2_KAFKA_BOOTSTRAP": bootstrap,
            "K2_KAFKA_TAIL": "false",
            "K2_DATA_DIR": settings.data_dir,
            "K2_EPOCH_SECONDS": "0.3",
            "K2_BATCH_SIZE": "2000",
        }
        command = [sys.executable, "-m", "bytewax.run", "flows.ingest"]
        log_path = tmp_path / "flow.log"
        # stderr to a file: librdkafka logs every failed connection, and an unread pipe would block the flow.
        with open(log_path, "ab") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
            starts = 1
            wait_for(lambda: committed(settings) > 0 or process.poll() is not None, 120, "no first commit")
            first_commit = time.monotonic() - began

            proxy.delay(150)
            time.sleep(4)
            accepted = proxy.stats.accepted
            proxy.drop()  # every connection reset; reconnects are refused for a second
            time.sleep(1)
            proxy.delay(150)
            time.sleep(2)
            at_partition = committed(settings)
            running_at_partition = process.poll() is None
            proxy.blackhole()
            time.sleep(PARTITION_SECONDS)
            proxy.pass_through()
            proxy.throttle(None)

            # The flow may ride the outage out or exit; a supervisor restarts it until it finishes.
            while process.wait(timeout=300) != 0 and starts < MAX_STARTS:
                process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
                starts += 1
            finished = time.monotonic() - began
        assert process.returncode == 0, log_path.read_text(errors="replace")[-3000:]
        assert running_at_partition and at_partition < total, "the flow was done before the partition: more load"
        assert proxy.stats.accepted > accepted, "no client reconnected through the proxy after the reset"
        assert proxy.stats.reset > 0
        marks = watermarks(bootstrap, partitions_of(bootstrap, TOPICS.values()))
        reports = reconcile(settings, marks)
    print(
        f"network chaos: {total} messages, {starts} flow start(s), {at_partition} committed when partitioned; "
        f"s since start: broker {started:.0f}, published {published:.0f}, first commit {first_commit:.0f}, "
        f"flow done {finished:.0f}; proxy {proxy.stats}"
    )

    assert_landed_exactly(settings, feed.stats, reports)
    assert sum(high for _, high in marks.values()) == total
    for report in reports:
        assert report.committed_offset == report.high_watermark, report
        assert report.messages == report.high_watermark - report.low_watermark, report
