"""Schema evolution: a column added to trades reads as null for old rows, the flow keeps writing without it, new
data carries it, and the query engine and the API return it."""

from __future__ import annotations

import csv
import io

import httpx
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.types import StringType

from k2.ops.config import load_settings
from k2.ops.reconcile import reconcile
from k2.query import QueryEngine
from k2.storage.catalog import TRADES, open_catalog, read_table
from k2.storage.writer import IcebergWriter
from tests.fixtures.api import api_server
from tests.fixtures.flow import run_ingest
from tests.fixtures.market import fed_per_partition
from tests.operational.answers import all_rows, synthetic_batches
from tests.unit.test_sink import arrow_batch

KEY = "operational-key"


def add_venue(settings) -> None:
    table = open_catalog(settings).load_table((settings.namespace, TRADES))
    with table.update_schema() as update:
        update.add_column("venue", StringType(), doc="market identifier code of the venue, when known")


def ordered(table: pa.Table) -> pa.Table:
    return table.sort_by(
        [("source_topic", "ascending"), ("source_partition", "ascending"), ("source_offset", "ascending")]
    )


def test_the_flow_keeps_writing_after_a_column_is_added_and_the_api_returns_it(settings, tmp_path):
    batches = synthetic_batches(settings, 6_000)
    half = len(batches) // 2
    reference = load_settings({}, data_dir=str(tmp_path / "reference"), epoch_seconds=0.05)
    for target in (settings, reference):  # the same two runs; only `settings` gains the column in between
        run_ingest(target, batches[:half])
        if target is settings:
            add_venue(settings)
        run_ingest(target, batches[half:])
    catalog = open_catalog(settings)
    trades = read_table(catalog.load_table((settings.namespace, TRADES)))
    expected = read_table(open_catalog(reference).load_table((reference.namespace, TRADES)))
    assert trades.schema.names[-1] == "venue"
    assert pc.all(pc.is_null(trades["venue"])).as_py()  # old rows and rows the flow wrote after the change
    assert ordered(trades.drop_columns(["venue"])).equals(ordered(expected))
    reports = reconcile(settings)
    assert all(report.balanced for report in reports)
    assert {r.partition: r.messages for r in reports} == fed_per_partition(batches)  # every message fed, once

    # new data with the column: e.g. an enrichment job appending through pyiceberg
    table = catalog.load_table((settings.namespace, TRADES))
    enriched = ordered(trades).slice(0, 3).drop_columns(["venue", "source_topic"])
    enriched = enriched.append_column("source_topic", pa.array(["enrichment"] * 3, pa.large_string()))
    enriched = enriched.append_column("venue", pa.array(["XNAS"] * 3, pa.large_string()))
    table.append(enriched.select(table.schema().as_arrow().names).cast(table.schema().as_arrow()))

    engine = QueryEngine.from_settings(settings)
    try:
        rows = all_rows(engine, TRADES)
    finally:
        engine.close()
    assert rows.column_names[-1] == "venue"
    venues = dict(zip(rows["source_topic"].to_pylist(), rows["venue"].to_pylist(), strict=False))
    assert venues["enrichment"] == "XNAS" and venues[settings.trades_topic] is None
    assert rows.num_rows == trades.num_rows + 3

    with api_server(settings, KEY) as base:
        response = httpx.get(
            f"{base}/v1/trades", params={"format": "csv", "limit": 100_000}, headers={"X-API-Key": KEY}
        )
        assert response.status_code == 200, response.text
        served = list(csv.DictReader(io.StringIO(response.text)))
        as_json = httpx.get(f"{base}/v1/trades", params={"limit": 100_000}, headers={"X-API-Key": KEY}).json()
        chosen = httpx.get(
            f"{base}/v1/trades", params={"fields": "trade_id,venue", "limit": 5}, headers={"X-API-Key": KEY}
        ).json()
    # JSON keeps its typed rows and carries the added column under `extra`; `fields=` can name it
    json_venues = [(row["source_topic"], row["extra"]["venue"]) for row in as_json["data"]]
    assert [venue for topic, venue in json_venues if topic == "enrichment"] == ["XNAS"] * 3
    assert {venue for topic, venue in json_venues if topic != "enrichment"} == {None}
    assert all(set(row) == {"trade_id", "extra"} and "venue" in row["extra"] for row in chosen["data"])
    assert len(served) == rows.num_rows
    assert {row["venue"] for row in served if row["source_topic"] == "enrichment"} == {"XNAS"}
    assert {row["venue"] for row in served if row["source_topic"] != "enrichment"} == {""}


def test_a_writer_opened_before_the_change_commits_after_it(settings):
    writer = IcebergWriter(open_catalog(settings), settings.namespace, commit_interval_seconds=3600)
    writer.write(arrow_batch(0, 10))
    writer.commit()
    add_venue(settings)  # another process: the writer's table handle still has the old schema
    writer.write(arrow_batch(10, 10))
    writer.close()
    table = open_catalog(settings).load_table((settings.namespace, TRADES))
    data = read_table(table)
    assert sorted(data["source_offset"].to_pylist()) == list(range(20))
    assert data["venue"].null_count == 20
    assert "venue" in table.schema().column_names
