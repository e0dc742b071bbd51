"""Reconciliation: is every message of every partition accounted for?

Per topic-partition: the committed offset in Iceberg (the lowest seam over the tables), the broker's watermarks,
and the rows + dead letters + duplicates that the commits account for. On a live system `lag` is what is still in
flight; `balanced` must always hold.
"""

from __future__ import annotations

from collections import Counter

import msgspec
import pyarrow.compute as pc

from k2.model.batch import position_key
from k2.ops.config import Settings
from k2.storage.catalog import DEAD_LETTERS, QUOTES, TRADES, ensure_tables, open_catalog, read_table
from k2.storage.seams import DUPLICATES_PROPERTY, MESSAGES_PROPERTY, committed_offsets, summed_property


class PartitionReport(msgspec.Struct, kw_only=True):
    partition: str
    committed_offset: int  # next offset below which everything is in Iceberg (lowest seam over the tables)
    low_watermark: int | None = None
    high_watermark: int | None = None
    rows: int
    dead_letters: int
    duplicates: int
    messages: int  # messages the commits say they consumed

    @property
    def accounted(self) -> int:
        return self.rows + self.dead_letters + self.duplicates

    @property
    def balanced(self) -> bool:
        """Rows + dead letters + duplicates == messages consumed."""
        return self.accounted == self.messages

    @property
    def past_the_topic_end(self) -> bool:
        """The warehouse has committed further than the topic reaches: the topic was recreated, or these are
        another cluster's watermarks. The flow refuses to read such a partition (k2.flow.kafka_source)."""
        return self.high_watermark is not None and self.committed_offset > self.high_watermark

    @property
    def lag(self) -> int | None:
        return None if self.high_watermark is None else self.high_watermark - self.committed_offset


def reconcile(settings: Settings, watermarks: dict[str, tuple[int, int]] | None = None) -> list[PartitionReport]:
    tables = ensure_tables(open_catalog(settings), settings.namespace)
    seams = [committed_offsets(t) for t in tables.values()]
    counts: Counter[str] = Counter()
    dead: Counter[str] = Counter()
    for name in (TRADES, QUOTES, DEAD_LETTERS):
        data = read_table(tables[name], ["source_topic", "source_partition"])
        grouped = data.group_by(["source_topic", "source_partition"]).aggregate([("source_partition", "count")])
        for topic, partition, n in zip(
            grouped["source_topic"].to_pylist(),
            grouped["source_partition"].to_pylist(),
            pc.cast(grouped["source_partition_count"], "int64").to_pylist(),
            strict=True,
        ):
            (dead if name == DEAD_LETTERS else counts)[position_key(topic, partition)] += n
    duplicates: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    for name in (TRADES, QUOTES):
        duplicates.update(summed_property(tables[name], DUPLICATES_PROPERTY))
        messages.update(summed_property(tables[name], MESSAGES_PROPERTY))
    keys = sorted(set().union(*seams, counts, dead, messages, watermarks or {}))
    reports = []
    for key in keys:
        low, high = (watermarks or {}).get(key, (None, None))
        reports.append(
            PartitionReport(
                partition=key,
                committed_offset=min(seam.get(key, 0) for seam in seams),
                low_watermark=low,
                high_watermark=high,
                rows=counts[key],
                dead_letters=dead[key],
                duplicates=duplicates[key],
                messages=messages[key],
            )
        )
    return reports


def format_reports(reports: list[PartitionReport]) -> str:
    header = (
        f"{'partition':<32} {'committed':>10} {'high wm':>10} {'lag':>8} {'rows':>10} {'dead':>7} "
        f"{'dups':>7} {'messages':>10}  balanced"
    )
    lines = [header]
    for r in reports:
        lines.append(
            f"{r.partition:<32} {r.committed_offset:>10,} {_n(r.high_watermark):>10} {_n(r.lag):>8} {r.rows:>10,} "
            f"{r.dead_letters:>7,} {r.duplicates:>7,} {r.messages:>10,}  {'yes' if r.balanced else 'NO'}"
        )
    beyond = [r.partition for r in reports if r.past_the_topic_end]
    if beyond:
        lines.append(
            f"NOT THE SAME TOPIC: committed past the topic's end on {', '.join(beyond)} (recreated, or another "
            "cluster); the flow will refuse to read them"
        )
    return "\n".join(lines)


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
