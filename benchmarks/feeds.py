"""Exchange feed benchmark on a real local broker, all in one run:

(a) feed: one `k2 feed` runner (this process) reading a local websocket server (another process) that sends the
    exchange's frames as fast as the socket takes them (pre-encoded websocket frames written at once), normalising
    each frame and publishing it with K2's idempotent producer until the broker has confirmed every message;
(b) raw produce: the very messages the feed published (its wire bytes, keyed), sent with the same idempotent acks=all
    producer in a plain loop (`benchmarks.replay.raw_produce`) — what Kafka alone costs here;
(c) normalise only: parse + normalise + encode of the same frames, no socket and no Kafka.

Frames are the documented public formats (tests/fixtures/exchange_frames), half trades and half quotes over eight
instruments. Each measurement runs `--rounds` times, alternating, and the best of each is reported.

    uv run python benchmarks/feeds.py              # 200,000 Coinbase frames -> benchmarks/reports/feeds.json
    uv run python benchmarks/feeds.py --quick      # 5,000 frames, one round, report to a temp file
Uses K2_KAFKA_BOOTSTRAP when set, else starts (and stops) a private broker from scripts.local_kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import parse_run, write_report  # noqa: E402
from benchmarks.kafka_ingest import broker  # noqa: E402
from benchmarks.replay import raw_produce, wait_for_leaders  # noqa: E402
from k2.feeds.command import EXCHANGES  # noqa: E402
from k2.feeds.normalise import QuoteSequencer, parse_symbols, to_message  # noqa: E402
from k2.feeds.publisher import KafkaPublisher, feed_producer  # noqa: E402
from k2.feeds.runner import FeedOptions, FeedRunner, running, wait_for  # noqa: E402
from k2.kafka.admin import ensure_topics  # noqa: E402
from tests.fixtures.exchange_frames import START_US, WRITERS, Quote, Trade  # noqa: E402

SYMBOLS = [f"{base}-USD" for base in ("BTC", "ETH", "SOL", "ADA", "XRP", "DOT", "LTC", "LINK")]


def make_frames(exchange: str, count: int) -> list[str]:
    writer = WRITERS[exchange]
    frames = []
    for i in range(count):
        symbol, n = SYMBOLS[i % len(SYMBOLS)], i // len(SYMBOLS) + 1
        price = f"{1_000 + n % 997}.{n % 100:02d}"
        if i % 2:
            frames.append(writer.quote(Quote(symbol, n, price, "1.25", f"{1_001 + n % 997}.5", "0.5", START_US + i)))
        else:
            frames.append(writer.trade(Trade(symbol, n, price, "0.0125", "BUY" if n % 3 else "SELL", START_US + i)))
    return frames


def _frame(payload: bytes) -> bytes:
    """An unmasked server-to-client text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        return bytes([0x81, n]) + payload
    if n < 65_536:
        return bytes([0x81, 126]) + n.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + n.to_bytes(8, "big") + payload


def serve_frames(frames_path: str, subscriptions: int, ready) -> None:
    """The replay server's process: every connection gets its subscriptions read, then all frames at once."""
    from websockets.asyncio.server import serve

    blob = b"".join(_frame(line.encode()) for line in Path(frames_path).read_text().splitlines())

    async def play(socket) -> None:
        for _ in range(subscriptions):
            await socket.recv()
        socket.transport.write(blob)  # as fast as the socket takes it: no per-frame send
        await socket.wait_closed()

    async def main() -> None:
        async with serve(play, "127.0.0.1", 0, compression=None, max_queue=None) as server:
            ready.send(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


def expected_messages(exchange: str, frames: list[str]) -> list[tuple[str, bytes, bytes]]:
    """The feed's messages for these frames, computed the way the runner does (untimed; the raw loop's input)."""
    adapter = EXCHANGES[exchange](parse_symbols(",".join(SYMBOLS)))
    sequencer = QuoteSequencer(START_US)
    out = []
    for frame in frames:
        parsed = adapter.parse(frame, START_US)
        rows = [("trade", row) for row in parsed.trades]
        rows += [("quote", row) for row, order in parsed.quotes if sequencer.assign(row, order)]
        out += [(kind, message.key, message.value) for kind, message in ((k, to_message(k, r)) for k, r in rows)]
    return out


def normalise_only(exchange: str, frames: list[str]) -> float:
    adapter = EXCHANGES[exchange](parse_symbols(",".join(SYMBOLS)))
    sequencer = QuoteSequencer(START_US)
    started = time.perf_counter()
    for frame in frames:
        parsed = adapter.parse(frame, START_US)
        for row in parsed.trades:
            to_message("trade", row)
        for row, order in parsed.quotes:
            if sequencer.assign(row, order):
                to_message("quote", row)
    return len(frames) / (time.perf_counter() - started)


def feed_run(exchange: str, url: str, bootstrap: str, topics: dict[str, str], messages: int) -> float:
    """frames/s of one feed runner from connect until the broker confirmed every message."""
    adapter = EXCHANGES[exchange](parse_symbols(",".join(SYMBOLS)))
    publisher = KafkaPublisher(adapter.name, feed_producer(bootstrap, 100_000), topics, 100_000)
    runner = FeedRunner(adapter, publisher, FeedOptions(url=url, status_seconds=0))

    async def run() -> float:
        started = time.perf_counter()
        async with running(runner):
            if not await wait_for(lambda: sum(publisher.delivered.values()) >= messages, 600):
                raise TimeoutError(f"{sum(publisher.delivered.values())} of {messages} confirmed after 600 s")
            elapsed = time.perf_counter() - started
        assert not publisher.failed and runner.frames["data"] == messages, (runner.frames, publisher.failed)
        return elapsed

    elapsed = asyncio.run(run())
    return runner.frames["data"] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchange", choices=sorted(EXCHANGES), default="coinbase")
    args, out = parse_run(parser, "frames", 200_000, 5_000, "feeds")
    logging.basicConfig(level=logging.WARNING)

    frames = make_frames(args.exchange, args.frames)
    messages = expected_messages(args.exchange, frames)
    assert len(messages) == len(frames)
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="k2-feeds-") as tmp, broker() as bootstrap:
        frames_path = Path(tmp) / "frames.ndjson"
        frames_path.write_text("\n".join(frames) + "\n")
        receive, send = spawn.Pipe(duplex=False)
        server = spawn.Process(target=serve_frames, args=(str(frames_path), WRITERS[args.exchange].subscriptions, send))
        server.start()
        try:
            url = f"ws://127.0.0.1:{receive.recv()}/ws"
            run = uuid.uuid4().hex[:8]
            names = [{k: f"bench-{what}-{run}-{i}.{k}s" for k in ("trade", "quote")} for i in range(args.rounds)
                     for what in ("feed", "raw")]  # fmt: skip
            ensure_topics(bootstrap, [t for pair in names for t in pair.values()], 4)
            wait_for_leaders(bootstrap, [t for pair in names for t in pair.values()])
            feed_rates, raw_rates, normalise_rates = [], [], []
            for i in range(args.rounds):
                feed_topics, raw_topics = names[2 * i], names[2 * i + 1]
                raw = [(raw_topics[kind], key, value) for kind, key, value in messages]
                if i % 2:  # alternate which goes first
                    raw_rates.append(raw_produce(bootstrap, raw))
                    feed_rates.append(feed_run(args.exchange, url, bootstrap, feed_topics, len(messages)))
                else:
                    feed_rates.append(feed_run(args.exchange, url, bootstrap, feed_topics, len(messages)))
                    raw_rates.append(raw_produce(bootstrap, raw))
                normalise_rates.append(normalise_only(args.exchange, frames))
                print(f"round: feed {feed_rates[-1]:,.0f} frames/s, raw produce {raw_rates[-1]:,.0f} msgs/s, "
                      f"normalise only {normalise_rates[-1]:,.0f} frames/s", file=sys.stderr)  # fmt: skip
        finally:
            server.terminate()
            server.join()

    figures = {
        "exchange": args.exchange,
        "frames": len(frames),
        "messages": len(messages),  # one per frame here
        "rounds": args.rounds,
        "feed_frames_per_s": max(feed_rates),
        "raw_produce_messages_per_s": max(raw_rates),
        "ratio": max(feed_rates) / max(raw_rates),
        "normalise_frames_per_s": max(normalise_rates),
        "all_rounds": {"feed": feed_rates, "raw_produce": raw_rates, "normalise": normalise_rates},
    }
    write_report("feeds", figures, out, args.quick)


if __name__ == "__main__":
    main()
