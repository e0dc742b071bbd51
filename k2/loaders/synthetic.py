"""A synthetic market-data feed: seeded, reproducible, realistic enough to exercise every path.

Many instruments on several exchanges, prices as random walks on each instrument's tick grid, quotes with spreads
around the last price, bursts of activity, and configurable rates of invalid messages, duplicates, sequence gaps
and reordering. Messages come out as wire bytes, grouped into per-partition batches the way Kafka would deliver
them (instruments keyed to partitions), so the flow, the tests and the benchmarks all see the same shape.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from k2.model.batch import RawBatch
from k2.model.schemas import AssetClass, Kind, Quote, Side, Trade, encode

# (exchange, asset class, currency, tick, lot, base price range)
VENUES = (
    ("XNAS", AssetClass.EQUITIES, "USD", Decimal("0.01"), Decimal(1), (5, 900)),
    ("XASX", AssetClass.EQUITIES, "AUD", Decimal("0.005"), Decimal(1), (1, 120)),
    ("BINANCE", AssetClass.CRYPTO, "USDT", Decimal("0.01"), Decimal("0.00001"), (1, 60_000)),
    ("CME", AssetClass.FUTURES, "USD", Decimal("0.25"), Decimal(1), (1_000, 6_000)),
)
START_US = 1_767_623_400_000_000  # 2026-01-05 14:30:00 UTC


@dataclass(frozen=True)
class FeedConfig:
    messages: int = 100_000
    symbols: int = 50
    quote_ratio: float = 0.5  # share of quotes among messages
    invalid_rate: float = 0.001
    duplicate_rate: float = 0.002
    gap_rate: float = 0.0005  # a sequence number skipped (the message never sent)
    reorder_rate: float = 0.001  # a message swapped with the next one of its instrument
    partitions: int = 4
    seed: int = 7
    start_us: int = START_US
    mean_interval_us: int = 2_000
    trades_topic: str = "synthetic.trades"
    quotes_topic: str = "synthetic.quotes"


@dataclass
class FeedStats:
    """What the feed injected, for tests and benchmark reports."""

    sent: int = 0
    invalid: int = 0
    duplicates: int = 0
    gaps: int = 0
    reordered: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


@dataclass
class _Instrument:
    exchange: str
    symbol: str
    asset_class: AssetClass
    currency: str
    tick: Decimal
    lot: Decimal
    ticks: int  # price in ticks
    seq: dict[str, int] = field(default_factory=lambda: {"trade": 0, "quote": 0})

    @property
    def key(self) -> bytes:
        return f"{self.exchange}:{self.symbol}".encode()


class SyntheticFeed:
    def __init__(self, config: FeedConfig | None = None):
        self.config = config or FeedConfig()
        self.stats = FeedStats()
        self._rng = random.Random(self.config.seed)
        self.instruments = [self._instrument(i) for i in range(self.config.symbols)]

    def _instrument(self, i: int) -> _Instrument:
        exchange, asset_class, currency, tick, lot, (lo, hi) = VENUES[i % len(VENUES)]
        price = Decimal(self._rng.uniform(lo, hi)).quantize(tick)
        return _Instrument(exchange, f"S{i:04d}", asset_class, currency, tick, lot, int(price / tick))

    def messages(self) -> Iterator[tuple[Kind, bytes, bytes]]:
        """(kind, instrument key, wire bytes) in send order."""
        cfg, rng, stats = self.config, self._rng, self.stats
        now = cfg.start_us
        held: dict[bytes, bytes] = {}  # instrument key + kind -> a message waiting for its successor
        recent: list[tuple[Kind, bytes, bytes]] = []
        while stats.sent < cfg.messages:
            # Bursts: now and then a run of messages arrives 50x faster.
            burst = rng.random() < 0.05
            now += max(1, int(rng.expovariate(1.0 / (cfg.mean_interval_us / (50 if burst else 1)))))
            inst = self.instruments[int(rng.paretovariate(1.2)) % len(self.instruments)]
            kind: Kind = "quote" if rng.random() < cfg.quote_ratio else "trade"
            roll = rng.random()
            if roll < cfg.invalid_rate:
                yield self._emit(kind, inst.key, self._invalid(inst, kind, now))
                stats.invalid += 1
                continue
            if roll < cfg.invalid_rate + cfg.duplicate_rate and recent:
                dup = recent[rng.randrange(len(recent))]
                yield self._emit(*dup)
                stats.duplicates += 1
                continue
            inst.seq[kind] += 1
            if rng.random() < cfg.gap_rate:
                inst.seq[kind] += 1  # the skipped number is never sent
                stats.gaps += 1
            value = self._valid(inst, kind, now)
            slot = inst.key + kind.encode()
            if slot in held:
                earlier = held.pop(slot)
                yield self._emit(kind, inst.key, value)  # the successor overtakes the held message
                yield self._emit(kind, inst.key, earlier)
            elif rng.random() < cfg.reorder_rate:
                held[slot] = value
                stats.reordered += 1
                continue
            else:
                yield self._emit(kind, inst.key, value)
            recent.append((kind, inst.key, value))
            if len(recent) > 64:
                recent.pop(0)
        for slot, value in held.items():
            kind = "trade" if slot.endswith(b"trade") else "quote"
            yield self._emit(kind, slot[: -len(kind)], value)

    def _emit(self, kind: Kind, key: bytes, value: bytes) -> tuple[Kind, bytes, bytes]:
        self.stats.sent += 1
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        return kind, key, value

    def _valid(self, inst: _Instrument, kind: Kind, now: int) -> bytes:
        rng = self._rng
        inst.ticks = max(1, inst.ticks + rng.choice((-2, -1, -1, 0, 0, 0, 1, 1, 2)))
        price = inst.tick * inst.ticks
        seq = inst.seq[kind]
        common = {
            "exchange": inst.exchange,
            "symbol": inst.symbol,
            "asset_class": inst.asset_class,
            "timestamp": now,
            "ingestion_timestamp": now + rng.randrange(50, 5_000),
            "currency": inst.currency,
            "source_sequence": seq,
        }
        if kind == "trade":
            return encode(
                Trade(
                    **common,
                    trade_id=f"{inst.symbol}-T{seq}",
                    price=price,
                    quantity=inst.lot * rng.randrange(1, 500),
                    side=rng.choice((Side.BUY, Side.SELL, Side.SELL, Side.BUY, Side.SELL_SHORT)),
                )
            )
        spread = inst.tick * rng.randrange(1, 4)
        return encode(
            Quote(
                **common,
                quote_id=f"{inst.symbol}-Q{seq}",
                bid_price=price - spread if price > spread else None,
                bid_quantity=inst.lot * rng.randrange(1, 2_000) if price > spread else None,
                ask_price=price + spread,
                ask_quantity=inst.lot * rng.randrange(1, 2_000),
            )
        )

    def _invalid(self, inst: _Instrument, kind: Kind, now: int) -> bytes:
        """A realistic broken message: the mistakes real producers make."""
        good = msgspec.json.decode(self._valid(inst, kind, now))
        good.pop("source_sequence", None)  # a broken message takes no number from the sequence
        choice = self._rng.randrange(6)
        if choice == 0:
            return msgspec.json.encode(good)[:-7]  # truncated
        if choice == 1:
            good.pop("symbol")
        elif choice == 2:
            good["timestamp"] = now // 1000  # milliseconds by mistake
        elif choice == 3:
            good["price" if kind == "trade" else "ask_price"] = "12..5"
        elif choice == 4:
            good["price" if kind == "trade" else "ask_price"] = "-" + str(good.get("price", good.get("ask_price")))
        else:
            good["side" if kind == "trade" else "asset_class"] = "HOLD"
        return msgspec.json.encode(good)


def partition_of(key: bytes, partitions: int) -> int:
    """Stable instrument -> partition mapping (crc32; Python's hash() is salted per process)."""
    return zlib.crc32(key) % partitions


def feed_batches(feed: SyntheticFeed, batch_size: int = 5_000) -> Iterator[RawBatch]:
    """Group the feed into per-partition batches with consecutive offsets, like a Kafka consumer would see."""
    cfg = feed.config
    topics = {"trade": cfg.trades_topic, "quote": cfg.quotes_topic}
    pending: dict[tuple[str, int], list[bytes]] = {}
    next_offset: dict[tuple[str, int], int] = {}
    for kind, key, value in feed.messages():
        slot = (topics[kind], partition_of(key, cfg.partitions))
        values = pending.setdefault(slot, [])
        values.append(value)
        if len(values) >= batch_size:
            yield _raw(slot, values, next_offset)
            pending[slot] = []
    for slot, values in pending.items():
        if values:
            yield _raw(slot, values, next_offset)


def _raw(slot: tuple[str, int], values: list[bytes], next_offset: dict[tuple[str, int], int]) -> RawBatch:
    start = next_offset.get(slot, 0)
    next_offset[slot] = start + len(values)
    return RawBatch(slot[0], slot[1], list(range(start, start + len(values))), values)
