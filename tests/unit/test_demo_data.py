"""`make demo` on a bare clone: the ASX samples it publishes are in the repository, and every example it prints
answers with data. The examples are read from scripts/demo.sh and asked of a warehouse the flow filled with those
samples; what each answer must hold comes from the raw CSV files (the csv module and the tz database), never from
the loader or the flow."""

from __future__ import annotations

import csv
import re
import shlex
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
from litestar.testing import TestClient

from api.app import create_app
from k2.loaders import load_asx, to_batches
from k2.ops.config import load_settings
from tests.fixtures.flow import run_ingest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"
SAMPLES = ROOT / "data" / "samples" / "asx"
SHARED = ROOT.parent / "shared" / "data" / "asx-sample"  # where the copy came from; absent on a bare clone
SYDNEY = ZoneInfo("Australia/Sydney")
KEY = "demo-test-key"


def demo_text() -> str:
    return DEMO.read_text()


def demo_default(variable: str) -> str:
    """The default of `${VARIABLE:-default}` in the demo script."""
    match = re.search(rf"\$\{{{variable}:-([^}}]+)\}}", demo_text())
    assert match, f"scripts/demo.sh has no default for {variable}"
    return match.group(1)


def demo_examples() -> list[str]:
    """The paths of the demo's `show "<path>"` lines, in order."""
    return [shlex.split(line)[1] for line in demo_text().splitlines() if line.startswith("show ")]


def sample_files() -> list[Path]:
    return sorted(path for path in SAMPLES.rglob("*") if path.is_file())


def raw_ticks(kind: str) -> dict[str, list[tuple[datetime, list[str]]]]:
    """Per symbol, each line of `<kind>/<company id>.csv` with its UTC time, in file order."""
    with (SAMPLES / "reference-data" / "company_info.csv").open(newline="") as reference:
        symbols = {row["company_id"]: row["symbol"] for row in csv.DictReader(reference)}
    ticks: dict[str, list[tuple[datetime, list[str]]]] = {}
    for path in sorted((SAMPLES / kind).glob("*.csv")):
        with path.open(newline="") as lines:
            rows = [row for row in csv.reader(lines) if row]
        ticks[symbols[path.stem]] = [(utc(row[0], row[1]), row) for row in rows]
    return ticks


def utc(day: str, time: str) -> datetime:
    return datetime.strptime(f"{day} {time}", "%m/%d/%Y %H:%M:%S.%f").replace(tzinfo=SYDNEY).astimezone(UTC)


def parsed(text: str) -> datetime:
    """An API timestamp, or a query bound (ISO-8601 without an offset is UTC)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_the_demo_publishes_the_samples_in_the_repository():
    assert demo_default("K2_ASX_SAMPLES") == "data/samples/asx"
    assert "../shared" not in demo_text()
    names = {path.relative_to(SAMPLES).as_posix() for path in sample_files()}
    assert {"reference-data/company_info.csv", "FORMAT.md"} <= names
    assert any(n.startswith("trades/") for n in names) and any(n.startswith("quotes/") for n in names)
    assert sum(path.stat().st_size for path in sample_files()) < 2**20, "keep the samples in the repository small"
    if SHARED.is_dir():  # the copy is unchanged, byte for byte (CRLF line ends too)
        for path in sample_files():
            assert path.read_bytes() == (SHARED / path.relative_to(SAMPLES)).read_bytes(), path


def test_uv_is_found_where_make_installs_it():
    # A fresh shell has no ~/.local/bin on its PATH: the scripts the README names look there themselves.
    for script in ("demo.sh", "ingest.sh"):
        assert '$(command -v uv || echo "$HOME/.local/bin/uv")' in (ROOT / "scripts" / script).read_text(), script


@pytest.fixture(scope="module")
def demo_api(tmp_path_factory):
    """The API over a warehouse the flow filled with the repository's ASX samples, as the demo does."""
    settings = load_settings({}, data_dir=str(tmp_path_factory.mktemp("demo") / "k2"), api_keys=KEY,
                             epoch_seconds=0.05, query_refresh_seconds=0)  # fmt: skip
    run_ingest(settings, list(to_batches(load_asx(SAMPLES), partitions=2, batch_size=200)))
    with TestClient(create_app(settings)) as client:
        client.headers["X-API-Key"] = KEY
        yield client


def test_every_demo_example_answers_with_the_samples_data(demo_api):
    trades, quotes = raw_ticks("trades"), raw_ticks("quotes")
    examples = demo_examples()
    routes = [urlsplit(path).path for path in examples]
    assert routes == ["/v1/symbols", "/v1/latest", "/v1/bars", "/v1/trades", "/v1/asof", "/v1/dead-letters"], (
        "a new demo example needs its expected answer here"
    )
    # /v1/dead-letters is answered by the synthetic burst the demo also publishes (0.1% of it invalid, as
    # FeedConfig.invalid_rate says): the samples have no bad line, and the demo stops if an example is empty.
    assert int(demo_default("K2_SYNTHETIC_MESSAGES")) >= 10_000
    for path in examples[:-1]:
        url = urlsplit(path)
        params = dict(parse_qsl(url.query))
        response = demo_api.get(url.path, params=params)
        assert response.status_code == 200, (path, response.text)
        data = response.json()["data"]
        assert data, f"{path} answered no data"
        check = {"/v1/symbols": symbols, "/v1/latest": latest, "/v1/bars": bars, "/v1/trades": ticks,
                 "/v1/asof": asof}[url.path]  # fmt: skip
        check(params, data, trades, quotes)


def symbols(params, data, trades, quotes):
    assert params == {"exchange": "ASX"}
    got = {row["symbol"]: (row["trades"], row["quotes"]) for row in data}
    assert got == {symbol: (len(trades[symbol]), len(quotes[symbol])) for symbol in trades}


def latest(params, data, trades, quotes):
    symbol = params["symbol"]
    (row,) = data
    assert parsed(row["trade"]["timestamp"]) == max(time for time, _ in trades[symbol])
    assert parsed(row["quote"]["timestamp"]) == max(time for time, _ in quotes[symbol])


def bars(params, data, trades, quotes):
    assert params["interval"] == "1d" and params.get("exchange", "ASX") == "ASX"
    days = Counter(time.astimezone(SYDNEY).date() for time, _ in trades[params["symbol"]])  # Sydney trading days
    assert [bar["trades"] for bar in data] == [days[day] for day in sorted(days)]


def ticks(params, data, trades, quotes):
    start, end, limit = parsed(params["start"]), parsed(params["end"]), int(params["limit"])
    window = [(time, row) for time, row in trades[params["symbol"]] if start <= time < end]
    assert len(window) >= limit, "the example's window holds fewer trades than it asks for"
    assert [parsed(row["timestamp"]) for row in data] == [time for time, _ in window[:limit]]
    assert [Decimal(row["price"]) for row in data] == [Decimal(raw[2]) for _, raw in window[:limit]]


def asof(params, data, trades, quotes):
    symbol, start, limit = params["symbol"], parsed(params["start"]), int(params["limit"])
    tolerance = timedelta(milliseconds=int(params["tolerance_ms"]))
    firsts = [(time, row) for time, row in trades[symbol] if time >= start][:limit]
    assert [parsed(row["timestamp"]) for row in data] == [time for time, _ in firsts]
    book = defaultdict(list)
    for time, row in quotes[symbol]:
        book[time].append(row)
    for (time, _), row in zip(firsts, data, strict=True):
        prevailing = max(t for t in book if t <= time)  # the newest quote at or before the trade
        assert time - prevailing <= tolerance, "the example's trades have no quote within its tolerance"
        assert parsed(row["quote_timestamp"]) == prevailing
        bid, ask = book[prevailing][-1][2:4]  # among quotes of one time, the later line wins
        assert (Decimal(row["bid_price"]), Decimal(row["ask_price"])) == (Decimal(bid), Decimal(ask))
