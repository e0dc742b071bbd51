"""What landed, counted from Iceberg with only the position columns read: a long soak lands tens of millions of
rows, too many to read whole (tests/fixtures/flow.read_landed does) just to count them."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from k2.ops.config import Settings
from k2.storage.catalog import DEAD_LETTERS, QUOTES, TRADES, open_catalog, read_table
from k2.storage.seams import DUPLICATES_PROPERTY, summed_property


@dataclass(frozen=True)
class Landed:
    rows: int  # trades + quotes
    dead_letters: int
    duplicates: int  # dropped, as the commits counted them
    repeated_positions: dict[str, int]  # per table: rows whose source position another row already has


def count_landed(settings: Settings) -> Landed:
    catalog = open_catalog(settings)
    tables = {name: catalog.load_table((settings.namespace, name)) for name in (TRADES, QUOTES, DEAD_LETTERS)}
    counts, repeated = {}, {}
    for name, table in tables.items():
        positions = read_table(table, ["source_topic", "source_partition", "source_offset"])
        counts[name] = positions.num_rows
        repeated[name] = positions.num_rows - _distinct_positions(positions)
    duplicates = sum(sum(summed_property(tables[name], DUPLICATES_PROPERTY).values()) for name in (TRADES, QUOTES))
    return Landed(counts[TRADES] + counts[QUOTES], counts[DEAD_LETTERS], duplicates, repeated)


def _distinct_positions(positions: pa.Table) -> int:
    return positions.group_by(["source_topic", "source_partition", "source_offset"]).aggregate([]).num_rows
