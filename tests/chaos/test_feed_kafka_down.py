"""A feed whose broker is down: it fills its bound, holds its socket (reads nothing more), and when a broker comes up
on that address every message is delivered, once and in order — nothing dropped, nothing given up on."""

from __future__ import annotations

import asyncio
import json

import pytest
from confluent_kafka import Consumer, TopicPartition

from k2.feeds.coinbase import Coinbase
from k2.feeds.normalise import parse_symbols
from k2.feeds.publisher import KafkaPublisher, feed_producer
from k2.feeds.runner import FeedOptions, FeedRunner, running
from k2.kafka.admin import ensure_topics
from scripts.local_kafka import start_broker
from tests.fixtures.exchange_frames import START_US, WRITERS, Trade
from tests.fixtures.kafka import local_jvm_unavailable_reason
from tests.fixtures.net import free_ports
from tests.fixtures.requirements import BROKER_VARIABLES, require
from tests.fixtures.ws_replay import ReplayServer, Session, until

BOUND = 40
TOPICS = {"trade": "feed-down.trades", "quote": "feed-down.quotes"}


def read_topic(bootstrap: str, topic: str, count: int) -> list[dict]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "feed-down", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[dict] = []
    try:
        for _ in range(60):
            values += [json.loads(m.value()) for m in consumer.consume(1_000, timeout=1.0) if not m.error()]
            if len(values) >= count:
                break
    finally:
        consumer.close()
    return values


@pytest.mark.slow
def test_a_feed_holds_while_kafka_is_down_and_delivers_everything_once_it_is_back(tmp_path):
    require("a private local broker to start late", local_jvm_unavailable_reason(), variables=BROKER_VARIABLES)
    port, controller = free_ports(2)
    bootstrap = f"127.0.0.1:{port}"  # nobody listens there yet
    writer = WRITERS["coinbase"]
    trades = [Trade("BTC-USD", 5_000 + i, f"100.{i:02d}", "0.5", "BUY", START_US + i) for i in range(300)]
    started = []

    async def play():
        session = Session(1, writer.acks(), [writer.trade(e) for e in trades], "hold")
        async with ReplayServer([session]) as server:
            exchange = Coinbase(parse_symbols("BTC-USD"), quotes=False)
            publisher = KafkaPublisher(exchange.name, feed_producer(bootstrap, BOUND), TOPICS, BOUND)
            runner = FeedRunner(exchange, publisher, FeedOptions(url=server.url, status_seconds=0))
            async with running(runner):
                await until(lambda: " holding " in runner.status_line(), timeout=30)
                read = runner.frames["data"]
                await asyncio.sleep(2.0)
                held = (read, runner.frames["data"], publisher.buffered)
                broker = await asyncio.to_thread(
                    start_broker, tmp_path / "kafka", port=port, controller_port=controller, ephemeral=False
                )
                started.append(broker)
                await asyncio.to_thread(ensure_topics, bootstrap, TOPICS.values(), 1)
                await until(lambda: publisher.delivered["trade"] == len(trades), timeout=180)
            return held, publisher

    try:
        (read, read_later, buffered), publisher = asyncio.run(play())
        assert read == read_later == buffered == BOUND  # held: not one frame more while nothing was confirmed
        assert not publisher.failed and publisher.buffered == 0
        landed = read_topic(bootstrap, TOPICS["trade"], len(trades))
        assert [m["source_sequence"] for m in landed] == [e.trade_id for e in trades]
        assert [m["price"] for m in landed] == [e.price for e in trades]
    finally:
        for broker in started:
            broker.stop()
