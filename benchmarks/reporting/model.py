"""What the benchmark report is made of: figures measured against a same-run baseline, the issues' targets, and
where each came from."""

from __future__ import annotations

import msgspec

MB = 1_000_000  # the issues state memory targets in MB
MIB = 2**20  # ... or in MiB (issue 17)


class Source(msgspec.Struct, frozen=True):
    """One benchmark JSON report: which run a figure came from."""

    file: str
    benchmark: str
    recorded_at: str  # ISO time of the run, or of the commit that recorded it (see `recorded_how`)
    recorded_how: str  # "in the file", "committed in <sha>", or "file time"
    commit: str | None  # the code measured, when the file says
    size: str  # the parameters that make two runs comparable ("1,000,001 messages, 3 rounds")
    machine: dict[str, object] = {}
    note: str = ""  # the subject of the commit that recorded it: how the machine was ("nothing else running")


class Figure(msgspec.Struct, frozen=True):
    """A measured value and its same-run baseline. `compared` is what regression detection looks at: the ratio
    value / baseline, or the value itself when a figure has no same-run baseline (memory)."""

    id: str  # stable across runs: "<file stem>.<name>"
    source: str  # Source.file
    title: str
    unit: str
    value: float
    label: str  # what `value` is ("flow")
    baseline: float | None = None
    baseline_label: str | None = None
    lower_is_better: bool | None = False  # for `compared`; None: not known (a benchmark without a reader)
    difference: float | None = None  # value - baseline, shown where the issue states its target that way
    spread: float | None = None  # relative half-range of the per-round ratios in this run, when rounds are recorded
    paired_ratio: float | None = None  # the benchmark's own ratio of paired rounds (median of flow/plain per round)

    @property
    def ratio(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio
        return None if self.baseline is None or self.baseline == 0 else self.value / self.baseline

    @property
    def compared(self) -> float:
        ratio = self.ratio
        return self.value if ratio is None else ratio


class Target(msgspec.Struct, frozen=True):
    """An issue's target and whether this run met it."""

    id: str
    source: str
    description: str
    value: float
    limit: float
    at_most: bool  # True: value <= limit; False: value >= limit
    unit: str

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit


class Comparison(msgspec.Struct, frozen=True):
    """One figure against the previous report: `status` is new, unchanged, improved, regressed or not comparable."""

    id: str
    status: str
    previous: float | None = None
    current: float | None = None
    change: float | None = None  # relative: current / previous - 1
    band: float | None = None
    reason: str = ""
