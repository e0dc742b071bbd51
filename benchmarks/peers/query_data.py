"""The query peer's data: the query benchmark's trades (benchmarks/query_data.py, same generator, parameters and
seed, so the same rows), a quotes table derived from them for the as-of join (one quote per trade, up to 0.9 s
before it, bid = the trade's price, ask = bid + 0.02), and both loaded into QuestDB.

QuestDB's tables are partitioned by day with the symbol as SYMBOL and money as DECIMAL(18,8). Its `read_parquet`
skips decimal columns, so each Iceberg data file is rewritten as Parquet with money as its exact decimal text,
sorted by time, and inserted with `CAST(... AS DECIMAL(18,8))`: exact, no float on the way. Both stores are kept
under the data folder and reused when they hold the requested rows.
"""

from __future__ import annotations

import contextlib
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.exceptions import NoSuchTableError

from benchmarks.peers.questdb import QuestDB
from benchmarks.query_data import prepare_table
from k2.ingest.columnar import ARROW_SCHEMAS
from k2.ops.config import Settings
from k2.storage.catalog import QUOTES, ensure_tables, open_catalog

QUOTES_MARKER = "peers-quotes.json"
LOADED_MARKER = "loaded.json"
SPREAD = Decimal("0.02")
QUOTE_PREFIX, DASH = pa.scalar("Q", pa.large_string()), pa.scalar("-", pa.large_string())
TRADES_DDL = (
    "CREATE TABLE trades (ts TIMESTAMP, symbol SYMBOL CAPACITY 2048, exchange SYMBOL, side SYMBOL, trade_id VARCHAR,"
    " price DECIMAL(18,8), quantity DECIMAL(18,8), source_sequence LONG) TIMESTAMP(ts) PARTITION BY DAY BYPASS WAL"
)
QUOTES_DDL = (
    "CREATE TABLE quotes (ts TIMESTAMP, symbol SYMBOL CAPACITY 2048, exchange SYMBOL, quote_id VARCHAR,"
    " bid_price DECIMAL(18,8), bid_quantity DECIMAL(18,8), ask_price DECIMAL(18,8), ask_quantity DECIMAL(18,8))"
    " TIMESTAMP(ts) PARTITION BY DAY BYPASS WAL"
)
MONEY = {"trades": ("price", "quantity"), "quotes": ("bid_price", "bid_quantity", "ask_price", "ask_quantity")}
COLUMNS = {
    "trades": ("ts", "symbol", "exchange", "side", "trade_id", "price", "quantity", "source_sequence"),
    "quotes": ("ts", "symbol", "exchange", "quote_id", "bid_price", "bid_quantity", "ask_price", "ask_quantity"),
}


def data_files(table) -> list[str]:
    return [p.removeprefix("file://") for p in table.inspect.files().column("file_path").to_pylist()]


def quotes_of(trades: pa.Table) -> pa.Table:
    """One quote per trade, a deterministic 1 µs - 0.9 s before it, bid at the trade's price, ask 0.02 above."""
    n = trades.num_rows
    schema = ARROW_SCHEMAS[QUOTES]
    spread = pc.multiply(trades["source_offset"], 7919)
    shift = pc.add(pc.subtract(spread, pc.multiply(pc.divide(spread, 900_000), 900_000)), 1)  # mod 0.9 s, integers
    micros = pc.subtract(trades["timestamp"].cast(pa.int64()), shift)
    money = pa.decimal128(18, 8)
    ask = pc.add(trades["price"], pa.scalar(SPREAD, money)).cast(money)
    size = pa.repeat(pa.scalar(Decimal(100), money), n)
    columns = {
        "exchange": trades["exchange"],
        "symbol": trades["symbol"],
        "asset_class": trades["asset_class"],
        "timestamp": micros.cast(pa.timestamp("us", tz="UTC")),
        "ingestion_timestamp": trades["ingestion_timestamp"],
        "currency": trades["currency"],
        "source_sequence": trades["source_sequence"],
        "message_id": pa.nulls(n, schema.field("message_id").type),
        "quote_id": pc.binary_join_element_wise(QUOTE_PREFIX, trades["trade_id"], DASH),
        "bid_price": trades["price"],
        "bid_quantity": size,
        "ask_price": ask,
        "ask_quantity": size,
        "one_sided": pa.repeat(pa.scalar(False), n),
        "crossed": pa.repeat(pa.scalar(False), n),
        "vendor_data": pa.nulls(n, schema.field("vendor_data").type),
        "source_topic": pa.repeat(pa.scalar("market.quotes", pa.large_string()), n),
        "source_partition": trades["source_partition"],
        "source_offset": trades["source_offset"],
    }
    quotes = pa.Table.from_arrays([pa.array(columns[f.name], f.type) for f in schema], schema=schema)
    return quotes.sort_by([("symbol", "ascending"), ("timestamp", "ascending")])


def prepare(settings: Settings, rows: int, symbols: int, days: int, seed: int, log) -> tuple[Any, Any, dict]:
    """The trades (shared generator) and quotes tables in the warehouse under `settings`, made when missing."""
    trades, generation = prepare_table(settings, rows, symbols, days, seed, log)
    marker = settings.data_path / QUOTES_MARKER
    catalog = open_catalog(settings)
    if marker.exists() and json.loads(marker.read_text()).get("rows") == rows:
        return trades, catalog.load_table((settings.namespace, QUOTES)), generation
    with contextlib.suppress(NoSuchTableError):
        catalog.drop_table((settings.namespace, QUOTES))  # an empty or partial one from an earlier run
    quotes = ensure_tables(catalog, settings.namespace)[QUOTES]
    started = time.perf_counter()
    for path in data_files(trades):
        quotes.append(quotes_of(pq.read_table(path)))
    generation["quotes_seconds"] = round(time.perf_counter() - started, 1)
    marker.write_text(json.dumps({"rows": rows}))
    log(f"quotes: {rows:,} rows in {generation['quotes_seconds']} s")
    return trades, quotes, generation


def for_questdb(rows: pa.Table, name: str) -> pa.Table:
    """A data file's rows as QuestDB reads them: time-ordered, money as exact decimal text."""
    rows = rows.rename_columns(["ts" if c == "timestamp" else c for c in rows.column_names])
    rows = rows.select(COLUMNS[name]).sort_by("ts")
    for column in MONEY[name]:
        i = rows.column_names.index(column)
        rows = rows.set_column(i, column, rows[column].cast(pa.string()))
    return rows


def load_questdb(qdb: QuestDB, trades, quotes, rows: int, log) -> dict[str, Any]:
    """Both tables into QuestDB, unless its data folder already holds them (`loaded.json`)."""
    marker = qdb.root / LOADED_MARKER
    if marker.exists() and json.loads(marker.read_text()).get("rows") == rows:
        log(f"reusing QuestDB's tables in {qdb.root}")
        return {"loaded": False, **json.loads(marker.read_text())}
    started = time.perf_counter()
    for name, table, ddl in (("trades", trades, TRADES_DDL), ("quotes", quotes, QUOTES_DDL)):
        qdb.sql(f"DROP TABLE IF EXISTS {name}")
        qdb.sql(ddl)
        money = set(MONEY[name])
        select = ", ".join(f"CAST({c} AS DECIMAL(18,8))" if c in money else c for c in COLUMNS[name])
        for k, path in enumerate(data_files(table)):
            staged = Path(qdb.imports) / f"{name}-{k}.parquet"
            pq.write_table(for_questdb(pq.read_table(path), name), staged)
            qdb.sql(f"INSERT INTO {name} SELECT {select} FROM read_parquet('{staged.name}')")
            staged.unlink()
        count = qdb.rows(f"SELECT count() FROM {name}")[0][0]
        if count != rows:
            raise RuntimeError(f"QuestDB's {name} holds {count} rows, not {rows}")
    seconds = round(time.perf_counter() - started, 1)
    log(f"QuestDB: loaded {rows:,} trades and quotes in {seconds} s")
    marker.write_text(json.dumps({"rows": rows, "load_seconds": seconds}))
    return {"loaded": True, "rows": rows, "load_seconds": seconds}


def questdb_size_bytes(root: Path) -> int:
    db = root / "db"
    return sum(p.stat().st_size for p in db.rglob("*") if p.is_file()) if db.exists() else 0
