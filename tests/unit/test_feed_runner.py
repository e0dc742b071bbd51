"""The feed runner against a local websocket server playing each exchange's script (tests/fixtures/exchange_frames):
resubscription after a drop, re-sends, a skipped number, malformed frames, heartbeats, pings, an idle connection,
a subscription error, and holding the socket while Kafka confirms nothing. Kafka is the stand-in producer here;
tests/integration/test_feeds_kafka.py runs the same script through the real broker and flow into Iceberg."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

import pytest

from k2.feeds.command import EXCHANGES
from k2.feeds.normalise import parse_symbols
from k2.feeds.publisher import KafkaPublisher
from k2.feeds.runner import FeedOptions, FeedRunner, running
from tests.fixtures.exchange_frames import FIRST, SECOND, SYMBOLS, WRITERS, Quote, Trade, scenario
from tests.fixtures.net import free_port
from tests.fixtures.ws_replay import RecordingProducer, ReplayServer, Session, until

TOPICS = {"trade": "feed.trades", "quote": "feed.quotes"}
START = 1_000_000


def feed(name: str, url: str, *, max_buffered: int = 10_000, **exchange_attributes):
    exchange = EXCHANGES[name](parse_symbols(",".join(SYMBOLS)))
    for attribute, value in exchange_attributes.items():
        setattr(exchange, attribute, value)
    producer = RecordingProducer()
    publisher = KafkaPublisher(exchange.name, producer, TOPICS, max_buffered)
    options = FeedOptions(url=url, backoff_initial_seconds=0.01, backoff_max_seconds=0.05, status_seconds=0)
    return FeedRunner(exchange, publisher, options, start_us=START), producer


def without_ids(frames: list[str]) -> list[dict]:
    return [{k: v for k, v in json.loads(f).items() if k not in ("id", "req_id")} for f in frames]


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_feed_through_a_drop_resubscribes_and_publishes_each_message_as_the_frames_said(name):
    writer = WRITERS[name]
    script = scenario(writer)
    trades_before = [e for e in FIRST if isinstance(e, Trade)]
    expected_trades = trades_before + script.resent_trades + [e for e in SECOND if isinstance(e, Trade)]
    expected_quotes = [e for e in FIRST + SECOND if isinstance(e, Quote)]

    async def play():
        async with ReplayServer(script.sessions, ping_interval=0.1, ping_timeout=0.5) as server:
            runner, producer = feed(name, server.url)
            async with running(runner):
                wanted = len(expected_trades) + len(expected_quotes) + 1  # + the malformed frame's raw bytes
                await until(lambda: sum(runner.publisher.delivered.values()) >= wanted)
                await asyncio.sleep(0.3)  # the server's pings meanwhile are answered: the connection stays
            return runner, producer, server

    runner, producer, server = asyncio.run(play())
    assert server.connections == 2
    subscriptions = writer.subscriptions
    assert without_ids(server.received[0][:subscriptions]) == without_ids(server.received[1][:subscriptions])
    published = defaultdict(list)
    for topic, key, value in producer.produced:
        published[topic].append((key, value))
    raw = [value for key, value in published[TOPICS["trade"]] if key is None]
    assert raw == [script.malformed_frame.encode()]
    trades = [json.loads(value) for key, value in published[TOPICS["trade"]] if key is not None]
    got = [(t["symbol"], t["source_sequence"], t["price"], t["quantity"], t["side"], t["timestamp"]) for t in trades]
    ms = name == "binance"
    assert got == [
        (e.symbol, e.trade_id, e.price, e.quantity, e.aggressor, e.time_us // 1000 * 1000 if ms else e.time_us)
        for e in expected_trades
    ]
    keys = [key for key, _ in published[TOPICS["trade"]] if key is not None]
    assert keys == [f"{name.upper()}:{t['symbol']}".encode() for t in trades]  # one instrument, one partition
    quotes = [json.loads(value) for _, value in published[TOPICS["quote"]]]
    assert [(q["symbol"], q["bid_price"], q["bid_quantity"], q["ask_price"], q["ask_quantity"]) for q in quotes] == [
        (e.symbol, e.bid, e.bid_qty, e.ask, e.ask_qty) for e in expected_quotes
    ]
    if name != "binance":
        assert [q["timestamp"] for q in quotes] == [e.time_us for e in expected_quotes]
    # Each instrument's quotes are numbered from the start, with one number left out at the reconnect.
    numbers = defaultdict(list)
    for q in quotes:
        numbers[q["symbol"]].append(q["source_sequence"])
    assert numbers == {"BTC-USD": [START, START + 1, START + 3], "ETH-USD": [START, START + 2]}
    frames = runner.frames
    assert (frames["malformed"], frames["unknown"], frames["error"], runner.resent) == (2, 1, 1, 1)
    beats = 0 if writer.heartbeat() is None else 4
    assert frames["heartbeat"] == beats and frames["control"] == 2 * len(writer.acks())


def test_kraken_is_pinged_and_a_silent_connection_is_made_again():
    async def play():
        session = Session(2, WRITERS["kraken"].acks(), [], "hold")
        async with ReplayServer([session, session]) as server:
            runner, _ = feed("kraken", server.url, ping_seconds=0.05, idle_seconds=0.5)
            async with running(runner):
                await until(lambda: server.connections == 2 and len(server.received[0]) >= 4)
            return server

    server = asyncio.run(play())
    pings = [json.loads(m) for m in server.received[0][2:]]
    assert pings and all(p["method"] == "ping" for p in pings)


def test_while_kafka_confirms_nothing_the_feed_stops_reading_then_resumes_without_loss():
    writer = WRITERS["coinbase"]
    trades = [Trade("BTC-USD", 1_000 + i, f"100.{i}", "1", "BUY", 1_796_378_400_000_000 + i) for i in range(60)]

    async def play():
        sessions = [Session(1, writer.acks(), [writer.trade(e) for e in trades], "hold")]
        async with ReplayServer(sessions) as server:
            runner, producer = feed("coinbase", server.url, max_buffered=8)
            producer.down = True
            async with running(runner):
                await until(lambda: runner.publisher.buffered >= 8)
                await asyncio.sleep(0.3)
                held = (runner.publisher.buffered, runner.frames["data"], runner.status_line())
                producer.down = False
                await until(lambda: runner.publisher.delivered["trade"] == len(trades))
            return held, producer

    (buffered, read, status), producer = asyncio.run(play())
    assert buffered == 8 and read == 8 and " holding " in status  # read no further than the bound
    assert [json.loads(v)["source_sequence"] for _, _, v in producer.produced] == [e.trade_id for e in trades]


def test_a_refused_connection_is_retried_with_backoff():
    from k2.ops.metrics import FEED_CONNECTIONS

    failed = FEED_CONNECTIONS.labels("KRAKEN", "failed")
    before = failed._value.get()

    async def play():
        runner, _ = feed("kraken", f"ws://127.0.0.1:{free_port()}/ws")  # nobody listens there
        async with running(runner):
            await until(lambda: failed._value.get() - before >= 3)
        return runner

    runner = asyncio.run(play())
    assert runner.connections == 0 and runner.backoff.attempt >= 3


def test_the_command_says_what_is_wrong_before_connecting(monkeypatch, capsys):
    from k2.ops.cli import main

    monkeypatch.delenv("K2_KAFKA_BOOTSTRAP", raising=False)
    assert main(["feed", "kraken", "--symbols", "BTC-USD"]) == 2
    assert "K2_KAFKA_BOOTSTRAP" in capsys.readouterr().err
    monkeypatch.setenv("K2_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    assert main(["feed", "kraken", "--symbols", "BTCUSD"]) == 2
    assert "give BASE-QUOTE" in capsys.readouterr().err
    assert main(["feed", "kraken", "--symbols", "BTC-USD", "--max-buffered", "0"]) == 2
    assert "--max-buffered must be positive" in capsys.readouterr().err
