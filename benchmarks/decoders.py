"""Decode paths compared: is there a columnar JSON reader that turns a batch of wire messages into Arrow faster
than K2's own path (msgspec per message, then column lists to Arrow)?

The ingest flow spends most of its time per message in Python: decoding and validating (`validate_batch`) and
building Arrow columns (`to_arrow`). A columnar reader would do both in C++ for a whole batch. This measures, on the
same batches of valid synthetic trades (5,000 per batch, the flow's size), in one process:

- `k2 validate_batch`: decode + every check (the flow's validate step);
- `k2 validate_batch + to_arrow`: up to the Arrow table the sink buffers;
- `msgspec decode only`: the floor of any per-message path;
- `pyarrow.json`: Arrow's JSON reader, explicit schema, one thread (the flow has one core to spare at most);
- `duckdb from_json`: DuckDB's JSON transform into the same columns, decimals as DECIMAL(18,8);
- `k2 avro` / `k2 protobuf`: the same trades in the Confluent wire format (written by confluent-kafka's reference
  serializers with K2's shipped schemas), through the pipeline's validate (frame decode, then the JSON path) and
  to_arrow, beside `k2 JSON` through the same pipeline; their Arrow tables are checked equal to JSON's.

and checks what each reader does with inputs K2 must accept or reject exactly (a price given as a JSON number, a
price with more than 8 decimals). Report: `benchmarks/reports/decoders.json`.

    uv run python benchmarks/decoders.py
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.json as pj
from confluent_kafka.schema_registry import SchemaRegistryClient

from benchmarks.common import REPORTS, recorded, save_report
from k2.formats import shipped
from k2.formats.resolve import save_answer
from k2.ingest.columnar import to_arrow
from k2.ingest.mapping import Mapper
from k2.ingest.pipeline import Pipeline
from k2.ingest.validate import Rejection, Rules, decode, validate_batch
from k2.loaders.synthetic import FeedConfig, SyntheticFeed
from k2.model.batch import RawBatch
from k2.model.schemas import TradeRow
from k2.ops.config import load_settings

REPORT = REPORTS / "decoders.json"
BATCH = 5_000

# vendor_data is left out: Arrow's JSON reader cannot read a map ("JSON conversion to map<string, string> is not
# supported"), so every reader is timed without it; K2's path reads it.
ARROW_TRADE = pa.schema(
    [
        ("exchange", pa.string()),
        ("symbol", pa.string()),
        ("asset_class", pa.string()),
        ("timestamp", pa.int64()),
        ("currency", pa.string()),
        ("trade_id", pa.string()),
        ("price", pa.string()),
        ("quantity", pa.string()),
        ("side", pa.string()),
        ("trade_conditions", pa.list_(pa.string())),
        ("ingestion_timestamp", pa.int64()),
        ("source_sequence", pa.int64()),
        ("message_id", pa.string()),
    ]
)
DUCKDB_TRADE = msgspec.json.encode(
    {
        "exchange": "VARCHAR",
        "symbol": "VARCHAR",
        "asset_class": "VARCHAR",
        "timestamp": "BIGINT",
        "currency": "VARCHAR",
        "trade_id": "VARCHAR",
        "price": "DECIMAL(18,8)",
        "quantity": "DECIMAL(18,8)",
        "side": "VARCHAR",
        "trade_conditions": ["VARCHAR"],
        "ingestion_timestamp": "BIGINT",
        "source_sequence": "BIGINT",
        "message_id": "VARCHAR",
    }
).decode()


def valid_trades(messages: int) -> list[bytes]:
    rules = Rules.from_settings(load_settings({}))
    feed = SyntheticFeed(FeedConfig(messages=messages, quote_ratio=0.0, symbols=500))
    return [v for _, _, v in feed.messages() if not isinstance(decode(v, "trade", rules), Rejection)]


VENDOR_NAMES = {"symbol": "sym", "price": "px", "quantity": "sz", "timestamp": "ts", "trade_id": "id", "side": "s"}


def vendor_shape(value: bytes) -> bytes:
    """A K2 trade with a vendor's field names (values untouched)."""
    message = msgspec.json.decode(value)
    return msgspec.json.encode({VENDOR_NAMES.get(name, name): field for name, field in message.items()})


def per_message_us(batches: list[list[bytes]], work: Callable[[list[bytes]], object], rounds: int) -> float:
    """The median over `rounds` of µs per message for `work` over every batch."""
    messages = sum(len(b) for b in batches)
    work(batches[0])  # warm: first-call costs (imports, caches) are not per message
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for batch in batches:
            work(batch)
        times.append((time.perf_counter() - started) / messages * 1e6)
    return statistics.median(times)


def framed_timings(batches: list[list[bytes]], rounds: int) -> dict[str, float]:
    """µs per message through `Pipeline.validate` + `to_arrow` for the trades as JSON, Avro and Protobuf. The
    writer's registry is confluent-kafka's in-memory one; the reader's schemas come from a local schema directory
    (after the first message of a schema both read from the same per-id cache)."""
    client = SchemaRegistryClient.new_client({"url": "mock://decoders"})
    topic = "market.trades"
    encoded = {"json": batches}
    for fmt in shipped.FORMATS:
        write = shipped.serializer(fmt, "trade", client, topic)
        encoded[fmt] = [[write(value) for value in batch] for batch in batches]
    timings = {}
    with tempfile.TemporaryDirectory() as schemas:
        for fmt in shipped.FORMATS:
            schema_id = int.from_bytes(encoded[fmt][0][0][1:5], "big")
            found = client.get_schema(schema_id)
            save_answer(schemas, schema_id, found.schema_type, found.schema_str)
        pipeline = Pipeline(load_settings({"K2_SCHEMA_DIR": schemas}))

        def through(batch: list[bytes]):
            return to_arrow(pipeline.validate(RawBatch(topic, 0, list(range(len(batch))), batch)))

        expected = through(batches[0]).tables["trades"]
        for fmt, formatted in encoded.items():
            tables = through(formatted[0]).tables
            assert set(tables) == {"trades"} and tables["trades"].equals(expected), f"{fmt} rows differ from JSON's"
            name = f"k2 {fmt}: Pipeline.validate + to_arrow"
            timings[name] = round(per_message_us(formatted, through, rounds), 3)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args()

    rules = Rules.from_settings(load_settings({}))
    trades = valid_trades(args.messages)
    batches = [trades[i : i + BATCH] for i in range(0, len(trades), BATCH)]
    row = msgspec.json.Decoder(TradeRow).decode
    read_options = pj.ReadOptions(use_threads=False, block_size=1 << 24)
    parse_options = pj.ParseOptions(explicit_schema=ARROW_TRADE, unexpected_field_behavior="ignore")
    con = duckdb.connect()
    con.execute("SET threads = 1")
    query = f"SELECT unnest(from_json(message, '{DUCKDB_TRADE}')) FROM batch"

    def raw(batch: list[bytes]) -> RawBatch:
        return RawBatch("t", 0, list(range(len(batch))), batch)

    def arrow_json(batch: list[bytes]) -> pa.Table:
        return pj.read_json(io.BytesIO(b"\n".join(batch)), read_options=read_options, parse_options=parse_options)

    def duckdb_json(batch: list[bytes]) -> pa.Table:
        messages = pa.table({"message": pa.array(batch, pa.binary()).cast(pa.string())})
        con.register("batch", messages)
        return con.sql(query).to_arrow_table()

    paths = {
        "k2 validate_batch": lambda b: validate_batch(raw(b), "trade", rules),
        "k2 validate_batch + to_arrow": lambda b: to_arrow(validate_batch(raw(b), "trade", rules)),
        "msgspec decode only": lambda b: [row(v) for v in b],
        "pyarrow.json read_json": arrow_json,
        "duckdb from_json": duckdb_json,
    }
    timings = {name: round(per_message_us(batches, work, args.rounds), 3) for name, work in paths.items()}
    # The same trades in a vendor's shape (other field names), through K2_MAPPING's mapper back to K2's fields.
    mapper = Mapper("trade", {field: VENDOR_NAMES.get(field, field) for field in TradeRow.__struct_fields__})
    vendor = [[vendor_shape(value) for value in batch] for batch in batches]
    mapped = "k2 mapped JSON: mapping + validate_batch + to_arrow"
    timings[mapped] = round(
        per_message_us(
            vendor,
            lambda b: to_arrow(validate_batch(raw(mapper.apply_all(b)), "trade", rules, originals=b)),
            args.rounds,
        ),
        3,
    )

    timings.update(framed_timings(batches, args.rounds))

    exactness = {}
    for label, message in {
        "price as a JSON number": b'{"price": 54.475}\n{"price": "54.5"}\n',
        "price with 9 decimals": b'{"price": "1.123456789"}\n',
    }.items():
        try:
            table = pj.read_json(
                io.BytesIO(message), parse_options=pj.ParseOptions(explicit_schema=pa.schema([("price", pa.string())]))
            )
            arrow_says = f"read: {table['price'].to_pylist()}"
        except pa.ArrowInvalid as exc:
            arrow_says = f"error: {exc}"
        first = message.split(b"\n")[0].decode().replace("'", "''")
        duck = con.execute(f"SELECT from_json('{first}', '{{\"price\": \"DECIMAL(18,8)\"}}').price").fetchone()
        exactness[label] = {"pyarrow.json": arrow_says, "duckdb from_json": str(duck[0])}

    report = {
        "benchmark": "decoders",
        "recorded": recorded(),
        "messages": len(trades),
        "batch_size": BATCH,
        "rounds": args.rounds,
        "us_per_message": timings,
        "exactness": exactness,
    }
    save_report(report, args.out)
    for name, us in timings.items():
        print(f"{name:32s} {us:6.2f} µs/msg  ({1e6 / us:>9,.0f} msg/s)")
    for label, says in exactness.items():
        print(f"{label}: {says}")


if __name__ == "__main__":
    main()
