"""Loaders on the real ASX sample files: time zones, exact decimals, derived sequences and ids, bad lines, and the
whole way from CSV lines through the real Bytewax flow into Iceberg with every line accounted for."""

import shutil
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from bytewax.testing import run_main

from flows.ingest import build_flow
from k2.flow.sources import FileSource
from k2.ingest.validate import Rules, decode, validate_batch
from k2.loaders import (
    Loaded,
    LoadError,
    Tally,
    asx_files,
    load_asx,
    load_asx_file,
    load_csv,
    load_file,
    load_ndjson,
    sydney_to_utc_us,
    to_batches,
    write_ndjson,
)
from k2.model.schemas import Quote, Trade
from k2.ops.cli import main
from k2.ops.config import load_settings
from tests.conftest import ASX_SAMPLES
from tests.fixtures.flow import read_landed, rows_per_partition, run_ingest
from tests.fixtures.market import fed_per_partition, trade, wire

pytestmark = pytest.mark.unit

ASX = ASX_SAMPLES
RULES = Rules.from_settings(load_settings({}))
TRADE_LINES = sum(len(p.read_bytes().splitlines()) for p in (ASX / "trades").glob("*.csv"))
QUOTE_LINES = sum(len(p.read_bytes().splitlines()) for p in (ASX / "quotes").glob("*.csv"))


def us(*args: int) -> int:
    return (datetime(*args, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // datetime.resolution


def decoded(messages: list[Loaded], kind: str) -> list:
    schema = Trade if kind == "trade" else Quote
    return [msgspec.json.decode(m.value, type=schema) for m in messages if m.kind == kind and m.error is None]


def validated(messages: list[Loaded], kind: str):
    """The flow's validation of one kind's messages (its records may carry decimals as `Decimal` or exact text)."""
    (batch,) = [b for b in to_batches(messages, batch_size=100_000) if kind in b.topic]
    return validate_batch(batch, kind, RULES)  # type: ignore[arg-type]


def checked_quotes(messages: list[Loaded]) -> list[Quote]:
    """Quotes through validation's reference path, which also derives the `one_sided` / `crossed` flags."""
    return [decode(m.value, "quote", RULES) for m in messages if m.kind == "quote"]  # type: ignore[misc]


def dec(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def asx_copy(tmp_path: Path) -> Path:
    root = tmp_path / "asx"
    shutil.copytree(ASX, root)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the shared copy is read-only
    return root


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())
    return path


def test_sample_layout_and_symbols():
    found = {(kind, path.name, symbol) for kind, path, symbol in asx_files(ASX)}
    assert found == {
        ("trade", "3153.csv", "MWR"),
        ("trade", "7181.csv", "DVN"),
        ("quote", "3153.csv", "MWR"),
        ("quote", "7181.csv", "DVN"),
    }
    assert (TRADE_LINES, QUOTE_LINES) == (243, 609)


def test_sydney_daylight_time_in_march_2014_is_utc_plus_11():
    # 10:00 in Sydney on 10 March 2014 (AEDT) is 23:00 UTC the day before.
    assert sydney_to_utc_us("03/10/2014", "10:00:00.000") == us(2014, 3, 9, 23)
    assert sydney_to_utc_us("03/10/2014", "13:50:38.849") == us(2014, 3, 10, 2, 50, 38, 849_000)
    first = decoded(list(load_asx(ASX)), "trade")[0]  # MWR, 03/10/2014,13:50:38.849
    assert (first.symbol, first.timestamp) == ("MWR", us(2014, 3, 10, 2, 50, 38, 849_000))


def test_standard_time_after_dst_ends_in_april_2014(tmp_path):
    # Sydney left DST at 03:00 AEDT on Sunday 6 April 2014 (clocks back to 02:00 AEST, UTC+10).
    path = write_lines(
        tmp_path / "trades/3153.csv",
        [
            "04/04/2014,10:00:00.000,1.2,100,0,,",  # Friday, still AEDT
            "04/06/2014,01:59:59.999,1.2,100,0,,",  # the last minute before the ambiguous hour, AEDT
            "04/06/2014,02:30:00.000,1.2,100,0,,",  # the hour that happens twice: its first (AEDT) reading
            "04/06/2014,03:00:00.000,1.2,100,0,,",  # after the change, AEST
            "04/07/2014,10:00:00.000,1.2,100,0,,",  # Monday, AEST
        ],
    )
    stamps = [t.timestamp for t in decoded(list(load_asx_file(path, "trade", "MWR")), "trade")]
    assert stamps == [
        us(2014, 4, 3, 23),
        us(2014, 4, 5, 14, 59, 59, 999_000),
        us(2014, 4, 5, 15, 30),
        us(2014, 4, 5, 17),
        us(2014, 4, 7, 0),
    ]


def test_prices_and_volumes_are_the_exact_decimals_of_the_text():
    messages = list(load_asx(ASX))
    lines = [line.split(",") for line in (ASX / "trades/7181.csv").read_text().splitlines()]
    dvn = [t for t in decoded(messages, "trade") if t.symbol == "DVN"]
    assert [(t.price, t.quantity) for t in dvn] == [(Decimal(p), Decimal(v)) for _, _, p, v, *_ in lines]
    assert any(t.price == Decimal("0.6525") for t in dvn)
    first = messages[0].value
    assert b'"price":"1.11"' in first and b'"quantity":"3667"' in first  # strings on the wire, never floats
    assert msgspec.json.decode(first)["side"] == "UNKNOWN"
    q = decoded(messages, "quote")[0]
    assert (q.bid_price, q.ask_price, q.bid_quantity) == (Decimal("1.11"), Decimal("0.0"), Decimal(10300))
    assert (q.exchange, q.currency, q.asset_class) == ("ASX", "AUD", "equities")


def test_conditions_and_vendor_fields():
    trades = decoded(list(load_asx(ASX)), "trade")
    assert Counter(c for t in trades for c in t.trade_conditions) == {"0": 158, "2": 74, "25": 11}
    assert all(t.vendor_data == {"venue": "", "buyer_id": ""} for t in trades)
    assert trades[0].message_id == "trades/3153.csv:1"


def test_identical_rows_are_separate_fills_with_distinct_ids():
    lines = (ASX / "trades/7181.csv").read_text().splitlines()
    repeated = {line for line, n in Counter(lines).items() if n > 1}
    assert repeated  # the sample has byte-identical rows
    dvn = [t for t in decoded(list(load_asx(ASX)), "trade") if t.symbol == "DVN"]
    twins = [t for line, t in zip(lines, dvn, strict=True) if line in repeated]
    assert len(twins) >= 2 * len(repeated)
    assert len({t.trade_id for t in twins}) == len(twins)
    assert len({(t.timestamp, t.price, t.quantity) for t in twins}) < len(twins)
    assert len({t.trade_id for t in dvn}) == len(dvn) == len(lines)


def test_sequence_restarts_at_one_each_sydney_trading_day():
    for kind in ("trade", "quote"):
        by_instrument: dict[tuple[str, str], list[int]] = defaultdict(list)
        for record in decoded(list(load_asx(ASX)), kind):
            day, sequence = (record.trade_id if kind == "trade" else record.quote_id).split("-")
            assert int(sequence) == record.source_sequence  # the id is (Sydney day, sequence)
            by_instrument[(record.symbol, day)].append(record.source_sequence)
        assert len({day for _, day in by_instrument}) == 5  # 10-14 March
        for sequences in by_instrument.values():
            assert sequences == list(range(1, len(sequences) + 1))


def test_one_sided_and_crossed_quotes_are_kept_and_flagged():
    messages = list(load_asx(ASX))
    batch = validated(messages, "quote")
    assert not batch.dead_letters and len(batch.records) == QUOTE_LINES
    lines = [line.split(",") for p in sorted((ASX / "quotes").glob("*.csv")) for line in p.read_text().splitlines()]
    empty = [Decimal(bid) == 0 or Decimal(ask) == 0 for _, _, bid, ask, *_ in lines]
    crossed = [not e and Decimal(bid) > Decimal(ask) for e, (_, _, bid, ask, *_) in zip(empty, lines, strict=True)]
    # Validation keeps every quote; an empty side is stored as null price and size.
    assert [q.bid_price is None or q.ask_price is None for q in batch.records] == empty and sum(empty) == 10
    pre_open = batch.records[0]  # 03/10/2014,05:46:13.604,1.11,0.0,10300,0
    assert (dec(pre_open.bid_price), pre_open.ask_price, pre_open.ask_quantity) == (Decimal("1.11"), None, None)
    quotes = checked_quotes(messages)
    assert [q.one_sided for q in quotes] == empty
    assert [q.crossed for q in quotes] == crossed and sum(crossed) == 19
    auction = next(q for q in quotes if q.crossed)
    assert auction.bid_price > auction.ask_price


def test_bad_lines_are_reported_with_their_line_and_become_dead_letters(tmp_path):
    lines = [
        "03/10/2014,10:00:00.000,1.11,100,0,,",
        "03/10/2014,10:00:01.000,1.11,100,0",  # 5 columns
        "13/45/2014,10:00:02.000,1.11,100,0,,",  # no such date
        "03/10/2014,25:00:00.000,1.11,100,0,,",  # no such time
        "03/10/2014,10:00:60.000,1.11,100,0,,",  # nor this one
        "03/10/2014,10:00:03.000,1.1.1,100,0,,",  # not a number
        "03/10/2014,10:00:04.000,1.12,-5,0,,",  # not an unsigned volume
        "",  # a blank line is a line too
        "03/10/2014,10:00:05.000,1.13,200,0,X,42",
    ]
    path = write_lines(tmp_path / "trades/3153.csv", lines)
    messages = list(load_asx_file(path, "trade", "MWR"))
    assert len(messages) == len(lines)
    errors = [(m.error.line, m.error.reason) for m in messages if m.error is not None]
    assert errors == [
        (2, "asx_columns"),
        (3, "asx_date"),
        (4, "asx_time"),
        (5, "asx_time"),
        (6, "asx_decimal:price"),
        (7, "asx_decimal:quantity"),
        (8, "asx_columns"),
    ]
    assert str(messages[1].error).startswith(f"{path}:2: asx_columns: 5 columns, expected 7")
    assert all(m.key == b"ASX:MWR" for m in messages)  # a bad line stays in its instrument's partition
    good = decoded(messages, "trade")
    assert [t.source_sequence for t in good] == [1, 2]  # a bad line takes no number: no false gap
    assert good[1].vendor_data == {"venue": "X", "buyer_id": "42"}

    batch = validated(messages, "trade")
    assert len(batch.records) == 2
    assert [(d.source_offset + 1, d.raw) for d in batch.dead_letters] == [(n, lines[n - 1].encode()) for n, _ in errors]
    tally = Tally()
    assert len(list(tally.count(messages))) == len(lines)
    assert (tally.by_kind["trade"], tally.error_count, tally.errors[0].line) == (9, 7, 2)


def test_an_unknown_company_id_fails_before_anything_is_loaded(tmp_path):
    root = asx_copy(tmp_path)
    write_lines(root / "trades/9999.csv", ["03/10/2014,10:00:00.000,1.11,100,0,,"])
    with pytest.raises(ValueError, match="company id 9999"):
        load_asx(root)


def test_asx_files_through_the_flow_into_iceberg_every_line_accounted_for(settings):
    messages = list(load_asx(ASX))
    batches = list(to_batches(messages, partitions=2, batch_size=100))
    landed = run_ingest(settings, batches)
    trades, quotes = landed.tables["trades"], landed.tables["quotes"]
    assert trades.num_rows == TRADE_LINES and quotes.num_rows == QUOTE_LINES
    assert landed.tables["dead_letters"].num_rows == 0 and sum(landed.duplicates.values()) == 0
    assert sum(landed.messages.values()) == TRADE_LINES + QUOTE_LINES
    # Conservation per source partition: every line handed to the flow is read once and lands once as a row.
    fed = fed_per_partition(batches)
    assert sum(fed.values()) == TRADE_LINES + QUOTE_LINES and landed.messages == fed
    assert rows_per_partition(landed) == fed
    # Exact decimals end to end; byte-identical fills both landed.
    assert Decimal("0.6525") in trades["price"].to_pylist()
    assert sum(quotes["crossed"].to_pylist()) == 19 and sum(quotes["one_sided"].to_pylist()) == 10
    # Each new Sydney day is a new session: a reset per instrument, kind and day after the first, never a gap.
    events = landed.rows("sequence_gaps")
    assert {e["event"] for e in events} == {"reset"}
    sessions = Counter()  # (kind, symbol) -> Sydney trading days seen
    for kind, table in (("trade", trades), ("quote", quotes)):
        ids = zip(table["symbol"].to_pylist(), table[f"{kind}_id"].to_pylist(), strict=True)
        sessions.update((kind, symbol) for symbol, day in {(s, i.split("-")[0]) for s, i in ids})
    assert len(events) == sum(n - 1 for n in sessions.values())
    assert all(e["received_sequence"] == 1 for e in events)


def test_bad_lines_land_as_dead_letters_through_the_flow(settings, tmp_path):
    root = asx_copy(tmp_path)
    trades = root / "trades/3153.csv"
    with trades.open("ab") as out:
        out.write(b"03/14/2014,10:00:00.000,abc,100,0,,\r\n03/14/2014,10:00:01.000\r\n")
    messages = list(load_asx(root))
    landed = run_ingest(settings, list(to_batches(messages)))
    assert landed.tables["trades"].num_rows == TRADE_LINES
    dead = landed.rows("dead_letters")
    assert sorted(d["raw"] for d in dead) == [b"03/14/2014,10:00:00.000,abc,100,0,,", b"03/14/2014,10:00:01.000"]
    assert landed.tables["trades"].num_rows + len(dead) == TRADE_LINES + 2 == landed.messages["market.trades/0"]


def test_ndjson_and_headered_csv(tmp_path):
    ndjson = tmp_path / "t.ndjson"
    ndjson.write_bytes(wire(trade(trade_id="a")) + b"\n\n" + wire(trade(trade_id="b", symbol="MSFT")) + b"\n")
    loaded = list(load_ndjson(ndjson, "trade"))
    assert [m.key for m in loaded] == [b"XNAS:AAPL", None, b"XNAS:MSFT"]
    assert [m.error for m in loaded] == [None, None, None]  # verbatim: validation is the judge
    assert len(validated(loaded, "trade").dead_letters) == 1

    csv = tmp_path / "q.csv"
    csv.write_text(
        "exchange,symbol,asset_class,timestamp,currency,quote_id,bid_price,bid_quantity,ask_price,ask_quantity,"
        "source_sequence,vendor_data\n"
        'XASX,BHP,equities,1394406000000000,AUD,q1,35.10,100,35.12,200,1,"{""venue"": ""X""}"\n'
        "XASX,BHP,equities,1394406000000001,AUD,q2,0,0,35.12,200,2,\n"
        "XASX,BHP,equities,1394406000000002,AUD,q3,35.10\n"
        "XASX,BHP,equities,soon,AUD,q4,35.10,100,35.12,200,4,\n"
    )
    loaded = list(load_file(csv, "quote"))
    assert [m.error.line if m.error else None for m in loaded] == [None, None, 4, None]
    assert loaded[2].error.reason == "csv_columns"
    batch = validated(loaded, "quote")
    first, second = batch.records
    assert (dec(first.bid_price), first.vendor_data, first.source_sequence) == (Decimal("35.10"), {"venue": "X"}, 1)
    assert second.bid_price is None and checked_quotes(loaded[1:2])[0].one_sided
    assert sorted(d.reason for d in batch.dead_letters) == ["invalid_field:timestamp", "malformed_json"]

    trades_csv = tmp_path / "t.csv"
    trades_csv.write_text(
        "exchange,symbol,asset_class,timestamp,currency,trade_id,price,quantity,side,trade_conditions\n"
        "XNAS,AAPL,equities,1767623400000000,USD,t1,187.25,100,BUY,@|F\n"
    )
    (record,) = validated(list(load_csv(trades_csv, "trade")), "trade").records
    assert (dec(record.price), record.trade_conditions) == (Decimal("187.25"), ["@", "F"])
    trades_csv.write_text("exchange,symbol,colour\n")
    with pytest.raises(ValueError, match="colour"):
        load_csv(trades_csv, "trade")


def test_cli_load_writes_ndjson_the_file_source_ingests(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("K2_KAFKA_BOOTSTRAP", raising=False)
    assert main(["load", "--asx", str(ASX)]) == 2  # no broker and no --out
    assert "K2_KAFKA_BOOTSTRAP" in capsys.readouterr().err
    assert main(["load", "--asx", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert main(["load", "--file", str(tmp_path / "missing.ndjson"), "--out", str(tmp_path / "x")]) == 2
    assert main(["load", "--asx", str(ASX), "--to", "files"]) == 2  # files need --out
    assert main(["load", "--asx", str(ASX), "--to", "kafka", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()

    out = tmp_path / "out"
    assert main(["load", "--asx", str(ASX), "--out", str(out)]) == 0
    assert "243 trades, 609 quotes" in capsys.readouterr().err
    for kind, lines in (("trade", TRADE_LINES), ("quote", QUOTE_LINES)):
        path = out / f"{kind}s.ndjson"
        assert len(path.read_bytes().splitlines()) == lines
        run_main(build_flow(FileSource(path, kind, batch_size=100), settings))  # type: ignore[arg-type]
    landed = read_landed(settings)
    assert landed.tables["trades"].num_rows == TRADE_LINES and landed.tables["quotes"].num_rows == QUOTE_LINES
    assert landed.messages == {"file.trades.trades/0": TRADE_LINES, "file.quotes.quotes/0": QUOTE_LINES}

    csv = tmp_path / "t.csv"
    csv.write_text("exchange,symbol,trade_id\nXNAS,AAPL,t1\nXNAS\n")
    assert main(["load", "--file", str(csv), "--kind", "trade", "--out", str(tmp_path / "g")]) == 0
    err = capsys.readouterr().err
    assert f"bad line {csv}:3: csv_columns" in err and "1 bad lines" in err
    assert len((tmp_path / "g/trades.ndjson").read_bytes().splitlines()) == 2


def test_batches_keep_each_instrument_in_one_partition():
    messages = list(load_asx(ASX))
    partitions: dict[bytes, set[int]] = defaultdict(set)
    batches = list(to_batches(messages, partitions=4, batch_size=50))
    by_value = {m.value: m.key for m in messages}
    for batch in batches:
        assert batch.offsets == list(range(batch.offsets[0], batch.offsets[0] + len(batch.values)))
        for value in batch.values:
            partitions[by_value[value]].add(batch.partition)
    assert all(len(p) == 1 for p in partitions.values())
    assert sum(len(b.values) for b in batches) == len(messages)


def test_write_ndjson_reports_progress(tmp_path):
    messages = [Loaded("trade", None, b"x")] * 20_000 + [Loaded("quote", None, b"y", LoadError("f", 1, "r", "d"))]
    seen: list[int] = []
    paths = write_ndjson(messages, tmp_path, progress=seen.append)
    assert seen == [10_000, 20_000]
    assert len(paths["trade"].read_bytes().splitlines()) == 20_000
    assert paths["quote"].read_bytes() == b"y\n"


def test_a_quote_file_with_crossed_and_empty_sides_keeps_every_line(tmp_path):
    path = write_lines(
        tmp_path / "quotes/3153.csv",
        ["03/10/2014,05:46:13.604,0.0,0.0,0,0", "03/10/2014,07:00:00.000,1.21,1.2,1000,1000"],
    )
    messages = list(load_asx_file(path, "quote", "MWR"))
    stored = validated(messages, "quote").records
    assert len(stored) == 2 and stored[0].bid_price is None and stored[0].ask_price is None
    empty, crossed = checked_quotes(messages)
    assert empty.one_sided and not empty.crossed
    assert crossed.crossed and not crossed.one_sided


def test_quoted_fields_and_undecodable_lines(tmp_path):
    path = tmp_path / "trades/3153.csv"
    path.parent.mkdir()
    path.write_bytes(
        b'03/10/2014,10:00:00,1.11,100,"0,2",X,\r\n'  # a quoted qualifier holding a comma; no milliseconds
        b"03/10/2014,10:00:01.000,1.11,100,0,\xff,\r\n"  # not UTF-8
        b'03/10/2014,10:00:02.000,"1.11,100,0,,\r\n'  # an unterminated quote: too few columns
        b"03/10/2014,10:00:03.000,1.11,100,0,X\rY,\r\n"  # a stray carriage return: a vendor field, verbatim
        b'"03/10/2014",10:00:04.000,1.11,100,0,X\rY,\r\n'  # the same in a line the csv module must parse
    )
    messages = list(load_asx_file(path, "trade", "MWR"))
    first, second = decoded(messages, "trade")
    assert (first.trade_conditions, first.timestamp) == (["0,2"], us(2014, 3, 9, 23))
    assert (second.vendor_data, second.source_sequence) == ({"venue": "X\rY", "buyer_id": ""}, 2)
    assert [m.error and m.error.reason for m in messages] == [None, "not_utf8", "asx_columns", None, "csv_syntax"]

    empty = tmp_path / "empty"
    (empty / "reference-data").mkdir(parents=True)
    shutil.copy(ASX / "reference-data/company_info.csv", empty / "reference-data")
    with pytest.raises(ValueError, match="no trades"):
        load_asx(empty)

    csv = tmp_path / "t.csv"
    csv.write_bytes(b"")
    assert list(load_csv(csv, "trade")) == []
    csv.write_bytes(b"exchange,symbol\nXNAS,\xff\nXNAS\nXNAS,A\rB\n")
    assert [m.error.reason for m in load_csv(csv, "trade")] == ["not_utf8", "csv_columns", "csv_syntax"]
