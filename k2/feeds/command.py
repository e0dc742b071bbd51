"""`k2 feed binance|coinbase|kraken --symbols BTC-USD,ETH-USD [--trades] [--quotes] [--url URL]`: a live feed into
the trades/quotes topics until Ctrl-C or SIGTERM (then it waits for the broker's confirmations and exits 0)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from k2.feeds.binance import Binance
from k2.feeds.coinbase import Coinbase
from k2.feeds.exchange import Exchange
from k2.feeds.kraken import Kraken
from k2.feeds.normalise import parse_symbols
from k2.ops.config import Settings

EXCHANGES: dict[str, type[Exchange]] = {"binance": Binance, "coinbase": Coinbase, "kraken": Kraken}


def add_parser(commands: argparse._SubParsersAction) -> None:
    feed = commands.add_parser("feed", help="stream an exchange's public trades and quotes into the topics")
    feed.add_argument("exchange", choices=sorted(EXCHANGES))
    feed.add_argument("--symbols", required=True, help="BASE-QUOTE, comma-separated (e.g. BTC-USD,ETH-USD)")
    feed.add_argument("--trades", action="store_true", help="trades (with neither flag: trades and quotes)")
    feed.add_argument("--quotes", action="store_true", help="best bid/offer")
    feed.add_argument("--url", help="websocket URL (default: the exchange's public endpoint)")
    feed.add_argument("--max-buffered", type=int, default=50_000, help="unconfirmed messages before holding")
    feed.add_argument("--status-seconds", type=float, default=5.0, help="status line period (0: none)")
    feed.add_argument("--metrics-port", type=int, help="Prometheus port (default K2_METRICS_PORT; 0: off)")


def feed_command(settings: Settings, args: argparse.Namespace) -> int:
    from k2.feeds.publisher import KafkaPublisher, feed_producer, topics_for
    from k2.feeds.runner import FeedOptions, FeedRunner
    from k2.kafka.admin import ensure_topics
    from k2.ops.logs import configure_logging
    from k2.ops.metrics import serve_metrics

    if not settings.kafka_bootstrap:
        print("k2: set K2_KAFKA_BOOTSTRAP (e.g. `make kafka-up`)", file=sys.stderr)
        return 2
    if args.max_buffered <= 0:
        print("k2: --max-buffered must be positive", file=sys.stderr)
        return 2
    try:
        instruments = parse_symbols(args.symbols)
    except ValueError as exc:
        print(f"k2: {exc}", file=sys.stderr)
        return 2
    both = not (args.trades or args.quotes)
    exchange = EXCHANGES[args.exchange](instruments, trades=args.trades or both, quotes=args.quotes or both)
    configure_logging(settings.log_format, settings.log_level)
    serve_metrics(settings.metrics_port if args.metrics_port is None else args.metrics_port)
    topics = topics_for(settings.trades_topic, settings.quotes_topic)
    ensure_topics(settings.kafka_bootstrap, topics.values(), settings.kafka_partitions)
    publisher = KafkaPublisher(
        exchange.name, feed_producer(settings.kafka_bootstrap, args.max_buffered), topics, args.max_buffered
    )
    options = FeedOptions(
        url=args.url or exchange.default_url,
        drain_seconds=settings.stop_timeout_seconds,
        status_seconds=args.status_seconds,
    )
    try:
        asyncio.run(_run_until_signalled(FeedRunner(exchange, publisher, options)))
    except asyncio.CancelledError:  # a second signal while waiting for the broker's confirmations
        print(f"k2: stopped with {publisher.buffered:,} messages unconfirmed", file=sys.stderr)
        return 1
    return 0 if publisher.buffered == 0 else 1


async def _run_until_signalled(runner) -> None:
    task = asyncio.create_task(runner.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    await task
