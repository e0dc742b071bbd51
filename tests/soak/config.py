"""The soak's knobs, from `K2_SOAK_*` environment variables: short in CI, hours by hand (`make soak`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from k2.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_RETENTION_SECONDS = load_settings({}).snapshot_retention_seconds


@dataclass(frozen=True)
class SoakConfig:
    # CI default: five minutes, the first 120 s a warm-up. The flow's RSS climbs towards ~270-300 MiB here in
    # slowing steps (allocator high-water marks: each new largest commit or snapshot raises the floor), then
    # swings by about +-7 MiB (+-2.5%) over 60-100 s. A 72 s judged span (3-min run) started in a trough and ended
    # on a crest in CI: +4.96% by window medians, +5.07% by slope, on a flat series; judged over 180 s the quarters'
    # medians average over a swing. `make soak` (hours) judges after a quarter of the run.
    # 3,000 msg/s is ~5% of what the flow does from Kafka on this 2-core machine (50-70k msg/s), so a shared,
    # loaded machine still leaves it a wide margin.
    seconds: float = 300.0  # K2_SOAK_SECONDS: how long the feed is produced (the drain and checks come after)
    rate: int = 3_000  # K2_SOAK_RATE: messages per second, trades and quotes together
    warmup_fraction: float = 0.4  # K2_SOAK_WARMUP_FRACTION: share of the run before RSS and lag are judged
    sample_seconds: float = 0.0  # K2_SOAK_SAMPLE_SECONDS: 0 = every 2 s, sparser on long runs (<= ~600 samples)
    query_interval: float = 0.2  # K2_SOAK_QUERY_INTERVAL: pause between two queries of the query thread
    epoch_seconds: float = 1.0  # K2_SOAK_EPOCH_SECONDS: the flow's epoch and commit interval
    # K2_SOAK_RETENTION_SECONDS: how long the flow keeps snapshots (K2_SNAPSHOT_RETENTION_SECONDS). Until that
    # window is full, every commit adds a snapshot to each table's metadata, which the flow holds in memory, so
    # RSS climbs for the first 15 min of the product default (+20-40 MiB steps at each maintenance in a 6-min run).
    # 0 = a quarter of the warm-up, at most the product default: the window fills before RSS is judged.
    retention_seconds: float = 0.0
    report: str = str(ROOT / "reports" / "soak.json")  # K2_SOAK_REPORT: the time series and verdicts
    # K2_SOAK_TRACEMALLOC: > 0 runs the flow under tracemalloc with a snapshot this often (seconds), and reports
    # what grew after the warm-up. Slows the flow; for finding a leak, not for the RSS verdict.
    tracemalloc: float = 0.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SoakConfig:
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            name = f"K2_SOAK_{field.name.upper()}"
            if name in environ:
                convert = {"float": float, "int": int, "str": str}[str(field.type)]
                try:
                    values[field.name] = convert(environ[name])
                except ValueError:
                    raise ValueError(f"{name}={environ[name]!r} is not a {field.type}") from None
        config = cls(**values)  # type: ignore[arg-type]
        if config.seconds <= 0 or config.rate <= 0 or not 0 < config.warmup_fraction < 1:
            raise ValueError("K2_SOAK_SECONDS and K2_SOAK_RATE must be positive, K2_SOAK_WARMUP_FRACTION in (0, 1)")
        return config

    @property
    def messages(self) -> int:
        return int(self.rate * self.seconds)

    @property
    def sample_every(self) -> float:
        return self.sample_seconds or max(2.0, self.seconds / 600)

    @property
    def warmup_seconds(self) -> float:
        return self.seconds * self.warmup_fraction

    @property
    def snapshot_retention_seconds(self) -> float:
        return self.retention_seconds or min(PRODUCT_RETENTION_SECONDS, self.warmup_seconds / 4)

    @property
    def maintenance_every_commits(self) -> int:
        """The product's cadence (300 commits, ~2.5 min here) once retention is the product's; with a short
        retention, maintenance every ~10 s, so expiry keeps up with it."""
        return 300 if self.snapshot_retention_seconds >= PRODUCT_RETENTION_SECONDS else 20
