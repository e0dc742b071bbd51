"""The soak's steady load: a paced producer of the synthetic feed, and a query loop against the real API."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from itertools import cycle

import httpx

from k2.kafka.producer import CheckedProducer, make_producer
from k2.loaders.synthetic import SyntheticFeed

TICK_SECONDS = 0.01  # the producer catches up with its schedule this often: smooth at any rate, no sleep per message


class SoakThread(threading.Thread):
    """A daemon thread of the soak: `stop` asks it to end; an error that ends it is kept in `error`."""

    def __init__(self, name: str):
        super().__init__(name=name, daemon=True)
        self.error: BaseException | None = None
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()


class PacedProducer(SoakThread):
    """Sends the whole feed at `rate` messages per second (as fast as it can if it falls behind), with every
    delivery confirmed at the end."""

    def __init__(self, bootstrap: str, topics: dict[str, str], feed: SyntheticFeed, rate: int):
        super().__init__("soak-producer")
        self.bootstrap, self.topics, self.feed, self.rate = bootstrap, topics, feed, rate
        self.sent = 0
        self.delivered = 0
        self.seconds = 0.0  # from the first send to the last confirmed delivery

    def run(self) -> None:
        try:
            producer = CheckedProducer(make_producer(self.bootstrap))
            messages = self.feed.messages()
            started = time.monotonic()
            exhausted = False
            while not exhausted and not self._stopping.is_set():
                due = int((time.monotonic() - started) * self.rate)
                while self.sent < due:
                    kind, key, value = next(messages, (None, None, None))
                    if kind is None:
                        exhausted = True
                        break
                    producer.produce(self.topics[kind], value, key)
                    self.sent += 1
                producer.producer.poll(0)  # serve delivery reports as we go
                self.delivered = producer.delivered
                time.sleep(TICK_SECONDS)
            self.delivered = producer.flush()
            self.seconds = time.monotonic() - started
        except BaseException as exc:
            self.error = exc


@dataclass
class QueryRecord:
    at: float  # monotonic time the query started
    route: str
    seconds: float
    status: int  # HTTP status; 0 when the request itself failed
    detail: str = ""


@dataclass
class QueryLog:
    """Every query the loop issued; the sampler reads the ones added since its last look."""

    records: list[QueryRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: QueryRecord) -> None:
        with self.lock:
            self.records.append(record)

    def since(self, index: int) -> list[QueryRecord]:
        with self.lock:
            return self.records[index:]

    def failures(self) -> list[QueryRecord]:
        with self.lock:
            return [r for r in self.records if r.status != 200]


class QueryLoop(SoakThread):
    """Asks what a user watching the market asks, one query after another: the latest trade and quote per
    instrument, then recent trades and one-minute bars of an active symbol in the last stretch of event time."""

    SYMBOLS = ("S0001", "S0002", "S0003")  # the feed's most active instruments (Pareto-distributed choice)
    TRADES_WINDOW_US = 60 * 1_000_000
    BARS_WINDOW_US = 3_600 * 1_000_000

    def __init__(self, base_url: str, key: str, interval: float, log: QueryLog):
        super().__init__("soak-queries")
        self.base_url, self.key, self.interval, self.log = base_url, key, interval, log
        self._newest_us: int | None = None  # the newest committed event time, from the last /v1/latest

    def run(self) -> None:
        symbols = cycle(self.SYMBOLS)
        routes = cycle(("latest", "trades", "bars"))
        with httpx.Client(base_url=self.base_url, headers={"X-API-Key": self.key}, timeout=60) as client:
            while not self._stopping.is_set():
                route = next(routes)
                path, params = self._request(route, next(symbols))
                started = time.monotonic()
                try:
                    response = client.get(path, params=params)
                    record = QueryRecord(started, route, time.monotonic() - started, response.status_code)
                    if response.status_code != 200:
                        record.detail = response.text[:500]
                    elif route == "latest":
                        self._remember_newest(response.json())
                except httpx.HTTPError as exc:
                    record = QueryRecord(started, route, time.monotonic() - started, 0, repr(exc))
                self.log.add(record)
                self._stopping.wait(self.interval)

    def _request(self, route: str, symbol: str) -> tuple[str, dict[str, str | int]]:
        if route == "latest":
            return "/v1/latest", {}
        newest = self._newest_us
        if route == "trades":
            params: dict[str, str | int] = {"symbol": symbol, "limit": 100}
            if newest is not None:
                params |= {"start": newest - self.TRADES_WINDOW_US, "end": newest + 1}
            return "/v1/trades", params
        params = {"symbol": symbol, "interval": "1m"}
        if newest is not None:
            params |= {"start": newest - self.BARS_WINDOW_US, "end": newest + 1}
        return "/v1/bars", params

    def _remember_newest(self, body: dict) -> None:
        newest = body["trades"]["max_event_time"]
        if newest is not None:
            moment = datetime.fromisoformat(newest)
            self._newest_us = int(moment.timestamp()) * 1_000_000 + moment.microsecond
