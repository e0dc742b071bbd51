"""The feed's connection loop: connect, subscribe, read and publish, keep alive, reconnect after a drop.

- Connect with `websockets` (its pings every 20 s, and its answers to the exchange's pings); send the adapter's
  subscriptions on every connect, so a reconnect resubscribes; send the adapter's own pings where it has them.
- A connection silent for the adapter's `idle_seconds` (heartbeats stopped) is closed and made again.
- Reconnect with exponential backoff and equal jitter (`Backoff`); a connection that lived `stable_seconds`
  resets it. While Kafka holds the feed (`KafkaPublisher.room`) nothing is read, and no reconnect is tried.
- Every frame is counted by outcome; malformed, unknown and error frames are logged with the frame. Trades and
  quotes go to the publisher; a malformed data frame goes on as its raw bytes to its kind's topic (a dead letter).
- Cancel the task to stop: it stops reading, waits for the broker's confirmations (`drain_seconds`) and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass

import websockets
from websockets.asyncio.client import ClientConnection, connect

from k2.feeds.exchange import Exchange
from k2.feeds.normalise import FeedMessage, QuoteSequencer, to_message
from k2.feeds.publisher import KafkaPublisher
from k2.ops.metrics import FEED_CONNECTED, FEED_CONNECTIONS, FEED_FRAMES, FEED_MESSAGES

log = logging.getLogger(__name__)
_LOGGED = {"malformed": logging.WARNING, "unknown": logging.WARNING, "error": logging.ERROR}
_FRAME_LOG_CHARS = 2_000


@dataclass(frozen=True)
class FeedOptions:
    url: str
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    stable_seconds: float = 30.0  # a connection that lived this long resets the backoff
    open_timeout_seconds: float = 10.0
    drain_seconds: float = 30.0  # on stop, how long to wait for the broker's confirmations
    status_seconds: float = 5.0  # the status line's period; 0: none
    max_frame_bytes: int = 4 * 2**20


class Backoff:
    """Exponential backoff with equal jitter: wait n is uniform in [c/2, c] with c = min(maximum, initial * 2**n),
    so a crowd of clients spreads out and none retries at once after a failure."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None):
        self.initial, self.maximum, self.attempt = initial, maximum, 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        cap = min(self.maximum, self.initial * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 60)
        return self._rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        self.attempt = 0


class FeedRunner:
    def __init__(
        self, exchange: Exchange, publisher: KafkaPublisher, options: FeedOptions, *, start_us: int | None = None
    ):
        self.exchange, self.publisher, self.options = exchange, publisher, options
        self.sequencer = QuoteSequencer(time.time_ns() // 1_000 if start_us is None else start_us)
        self.backoff = Backoff(options.backoff_initial_seconds, options.backoff_max_seconds)
        self.frames: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()  # handed to the publisher, by kind (raw dead letters: "raw")
        self.resent = 0
        self.connections = 0
        self.connected = False
        self._last_frame = time.monotonic()
        self._holding = False
        self._started = time.monotonic()
        self._reported: Counter[str] = Counter()

    async def run(self) -> None:
        """Until cancelled; then drains the publisher and returns."""
        keepers = [asyncio.create_task(self.publisher.serve_deliveries())]
        if self.options.status_seconds > 0:
            keepers.append(asyncio.create_task(self._status_loop()))
        try:
            while True:
                await self.publisher.room()
                began = time.monotonic()
                await self._connection()
                if time.monotonic() - began >= self.options.stable_seconds:
                    self.backoff.reset()
                delay = self.backoff.next()
                log.info("reconnecting in %.1f s", delay, extra={"exchange": self.exchange.name})
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            pass
        finally:
            for keeper in keepers:
                keeper.cancel()
            left = await self.publisher.drain(self.options.drain_seconds)
            self._report()
            if left:
                log.error("stopped with %s messages the broker had not confirmed", left)
            self._print_status(final=True)

    async def _connection(self) -> None:
        name, options = self.exchange.name, self.options
        try:
            async with connect(
                options.url,
                open_timeout=options.open_timeout_seconds,
                max_size=options.max_frame_bytes,
                close_timeout=2,
            ) as socket:
                self.connections += 1
                FEED_CONNECTIONS.labels(name, "connected").inc()
                if self.connections > 1:
                    self.sequencer.reconnected()
                for subscription in self.exchange.subscriptions():
                    await socket.send(subscription)
                self.connected = True
                FEED_CONNECTED.labels(name).set(1)
                log.info("connected to %s and subscribed", options.url, extra={"exchange": name})
                await self._read(socket)
            FEED_CONNECTIONS.labels(name, "dropped").inc()
            log.warning("the connection closed", extra={"exchange": name})
        except websockets.exceptions.InvalidURI:
            raise
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
            FEED_CONNECTIONS.labels(name, "dropped" if self.connected else "failed").inc()
            log.warning("connection lost or refused: %s: %s", type(exc).__name__, exc, extra={"exchange": name})
        finally:
            self.connected = False
            FEED_CONNECTED.labels(name).set(0)

    async def _read(self, socket: ClientConnection) -> None:
        keepers = [asyncio.create_task(self._watch_idle(socket))]
        if self.exchange.ping_seconds:
            keepers.append(asyncio.create_task(self._ping(socket, self.exchange.ping_seconds)))
        receive = socket.recv
        try:
            while True:
                try:
                    frame = await receive(decode=False)  # bytes: msgspec reads them as they are
                except websockets.exceptions.ConnectionClosedOK:
                    return
                self._last_frame = time.monotonic()
                messages = self._handle(frame)
                if messages:
                    self.publisher.publish(messages)
                    if self.publisher.full:
                        self._holding = True
                        await self.publisher.room()
                        self._holding, self._last_frame = False, time.monotonic()
        finally:
            for keeper in keepers:
                keeper.cancel()

    def _handle(self, frame: str | bytes) -> list[FeedMessage]:
        parsed = self.exchange.parse(frame, time.time_ns() // 1_000)
        self.frames[parsed.outcome] += 1
        if parsed.outcome in _LOGGED:
            shown = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
            log.log(
                _LOGGED[parsed.outcome],
                "%s frame from %s: %s",
                parsed.outcome,
                self.exchange.name,
                parsed.detail,
                extra={"exchange": self.exchange.name, "frame": shown[:_FRAME_LOG_CHARS]},
            )
        messages = [to_message("trade", row) for row in parsed.trades]
        self.messages["trade"] += len(messages)
        for row, order in parsed.quotes:
            if self.sequencer.assign(row, order):
                messages.append(to_message("quote", row))
                self.messages["quote"] += 1
            else:
                self.resent += 1
        if parsed.raw_to is not None:
            raw = frame.encode() if isinstance(frame, str) else frame
            messages.append(FeedMessage(parsed.raw_to, None, raw))
            self.messages["raw"] += 1
        return messages

    async def _watch_idle(self, socket: ClientConnection) -> None:
        idle = self.exchange.idle_seconds
        if not idle:
            return
        while True:
            await asyncio.sleep(min(1.0, idle / 4))
            if not self._holding and time.monotonic() - self._last_frame > idle:
                log.warning("no frame for %.0f s: reconnecting", idle, extra={"exchange": self.exchange.name})
                await socket.close(code=1001, reason="idle")
                return

    async def _ping(self, socket: ClientConnection, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            ping = self.exchange.ping()
            if ping is not None:
                await socket.send(ping)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.status_seconds)
            self._report()
            self._print_status()

    def _report(self) -> None:
        """Frame and resend counts into Prometheus, as deltas since the last report."""
        name = self.exchange.name
        for outcome, count in self.frames.items():
            if count > self._reported[outcome]:
                FEED_FRAMES.labels(name, outcome).inc(count - self._reported[outcome])
                self._reported[outcome] = count
        if self.resent > self._reported["resent"]:
            FEED_MESSAGES.labels(name, "quote", "resent").inc(self.resent - self._reported["resent"])
            self._reported["resent"] = self.resent
        self.publisher.report_metrics()

    def status_line(self) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-9)
        frames = sum(self.frames.values())
        delivered = sum(self.publisher.delivered.values())
        state = "holding" if self._holding else ("connected" if self.connected else "reconnecting")
        f = self.frames
        return (
            f"{self.exchange.name} {state} | frames {frames:,} ({frames / elapsed:,.0f}/s) | "
            f"trades {self.messages['trade']:,} quotes {self.messages['quote']:,} delivered {delivered:,} "
            f"({delivered / elapsed:,.0f}/s) buffered {self.publisher.buffered:,} | heartbeats {f['heartbeat']:,} "
            f"malformed {f['malformed']:,} unknown {f['unknown']:,} errors {f['error']:,} resent {self.resent:,} | "
            f"connections {self.connections:,}"
        )

    def _print_status(self, final: bool = False) -> None:
        if self.options.status_seconds <= 0:
            return
        if sys.stderr.isatty():
            print(f"\r{self.status_line()}   ", end="\n" if final else "", file=sys.stderr, flush=True)
        else:
            log.info(self.status_line(), extra={"exchange": self.exchange.name})


async def wait_for(condition, timeout: float, pause: float = 0.01) -> bool:
    """Poll `condition` until true or `timeout` passes (tests and the benchmark watch a running feed with it)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(pause)
    return True


@contextlib.asynccontextmanager
async def running(runner: FeedRunner):
    """Run a feed in the background for the block's duration; cancelled (and drained) at its end."""
    task = asyncio.create_task(runner.run())
    try:
        yield task
    finally:
        task.cancel()
        await task
