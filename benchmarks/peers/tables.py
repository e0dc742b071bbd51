"""The feed both ingest systems read (valid synthetic trades) and what their tables must hold: the oracle from the
messages themselves, and each table read with the same engine (pyiceberg scan -> DuckDB) into the same figures:
rows, distinct natural keys, duplicates, lost keys, and exact sums of price and quantity.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from pyiceberg.table import Table

from k2.loaders.synthetic import FeedConfig, SyntheticFeed
from k2.ops.config import load_settings
from k2.storage.catalog import TRADES, open_catalog

# Every message a valid, distinct trade: the sink has no validation or dedupe, so the input must not need them.
VALID_FEED = FeedConfig(
    messages=0, quote_ratio=0.0, symbols=500, invalid_rate=0.0, duplicate_rate=0.0, gap_rate=0.0, reorder_rate=0.0
)
# K2's natural key for unsequenced trades (k2/ingest/dedupe.py); with no gaps or repeats it is unique per message.
KEY = ("exchange", "symbol", "trade_id")


def valid_messages(count: int, seed: int = 7) -> Iterator[tuple[bytes, bytes]]:
    """`count` valid trades as (key, value) Kafka messages."""
    feed = SyntheticFeed(dataclasses.replace(VALID_FEED, messages=count, seed=seed))
    return ((key, value) for _, key, value in feed.messages())


def message_key(value: bytes) -> tuple[str, str, str]:
    trade = json.loads(value)
    return trade["exchange"], trade["symbol"], trade["trade_id"]


@dataclasses.dataclass
class Expected:
    """What a table holding each sent message exactly once contains (from the messages, not from any table)."""

    keys: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)
    price_sum: Decimal = Decimal(0)
    quantity_sum: Decimal = Decimal(0)

    def add(self, value: bytes) -> None:
        trade = json.loads(value)
        self.keys.add((trade["exchange"], trade["symbol"], trade["trade_id"]))
        self.price_sum += Decimal(trade["price"])
        self.quantity_sum += Decimal(trade["quantity"])

    @classmethod
    def of(cls, values: Iterable[bytes]) -> Expected:
        expected = cls()
        for value in values:
            expected.add(value)
        return expected

    def summary(self) -> dict[str, Any]:
        return {"rows": len(self.keys), "price_sum": str(self.price_sum), "quantity_sum": str(self.quantity_sum)}


def check(rows: pa.Table, expected: Expected) -> dict[str, Any]:
    """Rows, distinct keys, duplicates, lost and unexpected keys, and exact sums of a table's rows, in DuckDB."""
    db = duckdb.connect()
    try:
        db.register("t", rows)
        db.register("e", pa.table({name: [k[i] for k in expected.keys] for i, name in enumerate(KEY)}))
        count, distinct, price, quantity = db.execute(
            "SELECT count(*), count(DISTINCT (exchange, symbol, trade_id)), sum(price), sum(quantity) FROM t"
        ).fetchone()
        lost = db.execute("SELECT count(*) FROM e ANTI JOIN t USING (exchange, symbol, trade_id)").fetchone()[0]
        unexpected_count = db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT * FROM t) ANTI JOIN e USING (exchange, symbol, trade_id)"
        ).fetchone()[0]
    finally:
        db.close()
    price, quantity = price or Decimal(0), quantity or Decimal(0)
    return {
        "rows": count,
        "distinct_keys": distinct,
        "duplicates": count - distinct,
        "lost": lost,
        "unexpected": unexpected_count,
        "price_sum": str(price),
        "quantity_sum": str(quantity),
        # exact decimal sums: equal only when every row is there exactly once with its exact value
        "sums_match": count == len(expected.keys) and price == expected.price_sum and quantity == expected.quantity_sum,
    }


def key_columns(table: Table) -> pa.Table:
    """The columns the check reads, with the same pyiceberg scan for both systems' tables."""
    return table.scan(selected_fields=(*KEY, "price", "quantity")).to_arrow()


def k2_table(data_dir: Path) -> Table:
    settings = load_settings({}, data_dir=str(data_dir))
    return open_catalog(settings).load_table((settings.namespace, TRADES))
