"""Exchange feed -> real broker -> the real flow -> Iceberg, for each exchange's scripted session
(tests/fixtures/exchange_frames: a drop, a resume that re-sends, a skipped trade number, a malformed data frame,
heartbeats, a subscription error). What lands is compared value for value with the script's events."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from bytewax.testing import run_main

from flows.ingest import build_flow
from k2.feeds.command import EXCHANGES
from k2.feeds.normalise import parse_symbols
from k2.feeds.publisher import KafkaPublisher, feed_producer
from k2.feeds.runner import FeedOptions, FeedRunner, running
from k2.flow.sources import source_from_settings
from k2.kafka.producer import dead_letter_publisher
from k2.ops.reconcile import reconcile
from k2.storage.catalog import DEAD_LETTERS, QUOTES, SEQUENCE_GAPS, TRADES
from tests.fixtures.exchange_frames import QUOTES as QUOTE_EVENTS
from tests.fixtures.exchange_frames import SYMBOLS, TRADE_GAPS, WRITERS, scenario
from tests.fixtures.exchange_frames import TRADES as TRADE_EVENTS
from tests.fixtures.flow import kafka_settings, read_landed
from tests.fixtures.ws_replay import ReplayServer, Session, until

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_feed_lands_in_iceberg_as_its_frames_said(name, tmp_path, kafka_bootstrap, kafka_topic):
    trades_topic, quotes_topic = kafka_topic(2, prefix="feed-trades"), kafka_topic(2, prefix="feed-quotes")
    dlq = kafka_topic(1, prefix="feed-dlq")
    script = scenario(WRITERS[name])
    start_us = time.time_ns() // 1_000
    sent = len(TRADE_EVENTS) + len(script.resent_trades) + len(QUOTE_EVENTS) + 1  # + the malformed frame

    async def play():
        async with ReplayServer(script.sessions, ping_interval=0.2) as server:
            exchange = EXCHANGES[name](parse_symbols(",".join(SYMBOLS)))
            topics = {"trade": trades_topic, "quote": quotes_topic}
            publisher = KafkaPublisher(exchange.name, feed_producer(kafka_bootstrap, 1_000), topics, 1_000)
            options = FeedOptions(url=server.url, backoff_initial_seconds=0.01, status_seconds=0)
            runner = FeedRunner(exchange, publisher, options, start_us=start_us)
            async with running(runner):
                await until(lambda: sum(publisher.delivered.values()) >= sent, timeout=60)
            return runner

    runner = asyncio.run(play())
    assert not runner.publisher.failed and runner.publisher.buffered == 0
    settings = kafka_settings(tmp_path, kafka_bootstrap, trades_topic, quotes_topic, dlq)
    run_main(build_flow(source_from_settings(settings), settings, dead_letter_topic=dead_letter_publisher(settings)))
    landed = read_landed(settings)
    exchange = name.upper()

    # Every trade once, exactly as the frames said (Binance sends whole milliseconds).
    rows = landed.tables[TRADES].to_pylist()
    got = sorted((r["symbol"], r["source_sequence"], r["trade_id"], r["price"], r["quantity"], r["side"],
                  r["timestamp"], r["exchange"], r["currency"], r["asset_class"]) for r in rows)  # fmt: skip
    ms = name == "binance"
    expected = sorted((e.symbol, e.trade_id, str(e.trade_id), Decimal(e.price), Decimal(e.quantity), e.aggressor,
                       utc(e.time_us // 1000 * 1000 if ms else e.time_us), exchange, "USD", "crypto")
                      for e in TRADE_EVENTS)  # fmt: skip
    assert got == expected
    assert all(dict(r["vendor_data"])["native_symbol"] == WRITERS[name].native(r["symbol"]) for r in rows)

    quotes = landed.tables[QUOTES].to_pylist()
    got_quotes = sorted((q["symbol"], q["bid_price"], q["bid_quantity"], q["ask_price"], q["ask_quantity"],
                         q["one_sided"], q["crossed"]) for q in quotes)  # fmt: skip
    assert got_quotes == sorted((e.symbol, Decimal(e.bid), Decimal(e.bid_qty), Decimal(e.ask), Decimal(e.ask_qty),
                                 False, False) for e in QUOTE_EVENTS)  # fmt: skip
    if name != "binance":  # Binance book tickers carry no time: they are stamped on arrival
        assert sorted(q["timestamp"] for q in quotes) == sorted(utc(e.time_us) for e in QUOTE_EVENTS)
    else:
        assert all(utc(start_us) <= q["timestamp"] <= datetime.now(UTC) for q in quotes)

    # The skipped number, the trade lost while away and the dead-lettered one are gaps; each quote stream shows the
    # reconnect as a one-number gap; nothing else.
    gaps = {(g["kind"], g["symbol"], g["expected_sequence"], g["received_sequence"] - 1, g["missing_count"])
            for g in landed.tables[SEQUENCE_GAPS].to_pylist()}  # fmt: skip
    assert gaps == {("trade", symbol, lo, hi, hi - lo + 1) for symbol, lo, hi in TRADE_GAPS} | {
        ("quote", "BTC-USD", start_us + 2, start_us + 2, 1),
        ("quote", "ETH-USD", start_us + 1, start_us + 1, 1),
    }
    assert sum(landed.duplicates.values()) == len(script.resent_trades)  # re-sent trades never land twice
    assert landed.tables[DEAD_LETTERS]["raw"].to_pylist() == [script.malformed_frame.encode()]
    assert all(report.balanced for report in reconcile(settings))


def test_k2_feed_runs_as_a_command_until_sigterm_then_exits_0(kafka_bootstrap, kafka_topic):
    """`k2 feed` as a process (topics, metrics off, status lines as JSON logs): it publishes what a replayed
    Coinbase session sends, reports it on its status line, and a SIGTERM ends it cleanly."""
    writer = WRITERS["coinbase"]
    trades = [e for e in TRADE_EVENTS if e.symbol == "BTC-USD"]
    topics = {"K2_TRADES_TOPIC": kafka_topic(1, prefix="cli-trades"), "K2_QUOTES_TOPIC": kafka_topic(1, prefix="q")}
    env = {
        **os.environ,
        **topics,
        "K2_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "K2_METRICS_PORT": "0",
        "K2_LOG_FORMAT": "json",
    }

    async def play() -> tuple[int, list[dict]]:
        session = Session(1, writer.acks(), [writer.heartbeat(), *map(writer.trade, trades)], "hold")
        async with ReplayServer([session]) as server:
            command = [sys.executable, "-m", "k2.ops.cli", "feed", "coinbase", "--symbols", "BTC-USD",
                       "--trades", "--url", server.url, "--status-seconds", "0.2"]  # fmt: skip
            process = await asyncio.create_subprocess_exec(*command, env=env, stderr=asyncio.subprocess.PIPE)
            lines: list[dict] = []
            try:
                while f"delivered {len(trades)} " not in (lines[-1]["message"] if lines else ""):
                    line = await asyncio.wait_for(process.stderr.readline(), 60)
                    assert line, "k2 feed ended early"
                    if line.startswith(b"{"):
                        lines.append(json.loads(line))
                process.send_signal(signal.SIGTERM)
                return await asyncio.wait_for(process.wait(), 60), lines
            finally:
                if process.returncode is None:
                    process.kill()

    code, lines = asyncio.run(play())
    assert code == 0
    assert any(line["message"].startswith("connected to ws://127.0.0.1:") for line in lines)
    status = lines[-1]["message"]
    assert status.startswith("COINBASE connected | frames ") and "heartbeats 1 " in status
