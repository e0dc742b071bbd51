"""How the soak judges its time series: does memory stay flat after the warm-up, does the lag stay bounded?

Both judgements use robust statistics, because a few seconds of a shared 2-core machine are noisy: a commit, a
burst of the feed or another process's test can move one sample a lot, but not a median or a Theil-Sen slope (the
median of the slopes between every pair of samples, which ignores up to ~29% of outliers). Memory also swings
slowly on its own (the allocator), which the RSS verdict fits and takes out (`fit_trend`).

`python -m tests.soak.verdict reports/soak.json` judges a report's RSS series again (with this module's rules).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

RSS_GROWTH_LIMIT = 0.05  # over the judged span, the flow's resident memory may grow by at most 5%
# The lag may grow by at most this share of the produce rate: a flow that consumes >= 95% of what arrives keeps
# up within noise; one below it falls behind for good (over a long run the end bound catches it as well).
LAG_SLOPE_LIMIT = 0.05
MIN_JUDGED_SAMPLES = 8
# The flow's RSS swings by about +-7 MiB (+-2.5%) with periods of 60-100 s once settled (glibc's heaps and their
# trims, the commit and maintenance rhythm). The trend fit removes one swing with a period in this range; a swing
# slower than the upper bound counts as growth (at most a third of the judged span: a sine with fewer than 1.5
# periods in the span could pass for a trend).
SWING_PERIOD_RANGE = (30.0, 300.0)
SWING_PERIODS = 60  # periods tried, evenly spaced in log between the bounds
# The floor windows: at least the longest swing period seen, so each holds a trough whatever the phase.
FLOOR_WINDOW_SECONDS = 100.0
FLOOR_QUANTILE = 5  # percent: the floor ignores a few samples caught in a dip (a trim, a descheduled read)
OUTLIER_MADS = 5.0  # residuals beyond this many (scaled) median absolute deviations are left out of the refit


class TooFewSamples(ValueError):
    """The judged part of the run holds too few samples to say anything (the run was too short)."""


def theil_sen_slope(t: Sequence[float], y: Sequence[float]) -> float:
    """Median of the pairwise slopes (units of y per unit of t)."""
    ts, ys = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(ts), k=1)
    dt = ts[j] - ts[i]
    keep = dt > 0
    return float(np.median((ys[j] - ys[i])[keep] / dt[keep]))


def _window(n: int) -> int:
    """Samples in a start or end window: a quarter of the judged ones, at least 3."""
    return max(3, n // 4)


@dataclass(frozen=True)
class Trend:
    """y ~ level + slope * (t - t[0]) + amplitude * sin(2 pi (t - t[0]) / period + phase), least squares."""

    level: float
    slope: float
    amplitude: float
    period: float | None  # None: no swing fitted (a span too short for one)
    used: int  # samples in the final fit (outliers left out)


def _fit(t0: np.ndarray, y: np.ndarray, periods: np.ndarray) -> tuple[np.ndarray, float | None, np.ndarray]:
    """The least-squares line plus the one sinusoid (of the periods tried) that leaves the smallest residual."""
    line = np.column_stack([np.ones_like(t0), t0])
    best: tuple[float, np.ndarray, float | None, np.ndarray] | None = None
    for period in periods if len(periods) else [None]:
        if period is None:
            design = line
        else:
            angle = 2 * np.pi * t0 / period
            design = np.column_stack([line, np.sin(angle), np.cos(angle)])
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        residual = y - design @ coef
        ss = float(residual @ residual)
        if best is None or ss < best[0]:
            best = (ss, coef, period, residual)
    assert best is not None
    return best[1], best[2], best[3]


def fit_trend(t: Sequence[float], y: Sequence[float]) -> Trend:
    """The linear trend of `y` with the allocator's swing taken out: a line plus one sinusoid whose period is
    searched in `SWING_PERIOD_RANGE` (up to a third of the span), fitted by least squares, then fitted again
    without the samples whose residual is an outlier (a transient peak, a dip at a trim).

    Why not the Theil-Sen slope of the raw series: over 180 s, a +-7 MiB swing of 60-100 s moves it by up to
    +-2.8% of ~280 MiB at random, depending on the phase the span starts in; with the swing fitted, a flat series
    reads within +-0.3% and a steady leak of 0.1 MiB/s as +6.4% +-0.3% (tests/soak/test_soak_verdict.py)."""
    ts, ys = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
    t0 = ts - ts[0]
    span = float(t0[-1])
    low, high = SWING_PERIOD_RANGE[0], min(SWING_PERIOD_RANGE[1], span / 1.5)
    periods = np.geomspace(low, high, SWING_PERIODS) if high > low else np.array([])
    coef, period, residual = _fit(t0, ys, periods)
    mad = float(np.median(np.abs(residual - np.median(residual)))) * 1.4826
    keep = np.abs(residual) <= OUTLIER_MADS * mad if mad > 0 else np.ones(len(ys), dtype=bool)
    if keep.sum() < len(ys):
        coef, period, _ = _fit(t0[keep], ys[keep], periods)
    amplitude = float(np.hypot(coef[2], coef[3])) if period is not None else 0.0
    return Trend(level=float(coef[0]), slope=float(coef[1]), amplitude=amplitude, period=period, used=int(keep.sum()))


class Verdict:
    """A judged figure (a dataclass with an `ok` property): its fields, and whether it passed."""

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}  # type: ignore[call-overload, attr-defined]


@dataclass(frozen=True)
class RssVerdict(Verdict):
    baseline_kib: float  # the trend's level where the judged span starts
    end_kib: float  # the trend's level where it ends
    fitted_growth: float  # judged: end / baseline - 1, the trend over the judged span with the swing taken out
    floor_growth: float  # judged: the low 5% quantile of the last window against the first (each >= one swing)
    window_growth: float  # the last quarter's median against the first's: reported, not judged (moves with swings)
    slope_kib_per_s: float
    swing_kib: float  # the fitted swing's amplitude
    swing_period_s: float | None
    growth_per_hour: float  # the slope extrapolated to an hour: reported, not judged (see `judge_rss`)
    judged_seconds: float
    samples: int
    limit: float

    @property
    def ok(self) -> bool:
        return bool(self.fitted_growth <= self.limit and self.floor_growth <= self.limit)


def judge_rss(t: Sequence[float], rss_kib: Sequence[float], warmup_end: float) -> RssVerdict:
    """RSS after `warmup_end` must not grow by more than 5% over the judged span, by two measures that must both
    hold, each robust to the allocator's swings (sample RSS every second or faster: many samples per swing):

    - the trend (`fit_trend`): a line fitted together with one swing, over every judged sample. A steady leak
      shows in full, whatever phase the swing starts in;
    - the floor: the low 5% quantile of the last `FLOOR_WINDOW_SECONDS` against the first (half the span each
      when shorter). A window at least one swing long holds a trough whatever the phase, so the floors of a flat
      series agree within a few hundred KiB; a step up that stays (which a line fits poorly) raises the last one.

    The growth is measured over the span that was measured, not extrapolated beyond it. On the 5-minute CI run
    (180 s judged) a leak of 5% per hour is ~700 KiB in total, well below the MiB-sized steps the allocator and
    librdkafka's queues make on their own: the short run catches fast growth (a buffer that is never emptied, a
    cache keyed by something unbounded); slow growth is what the long run (`make soak`) is for, where the same
    rule then covers hours.
    """
    ts, ys = np.asarray(t, dtype=float), np.asarray(rss_kib, dtype=float)
    judged = ts >= warmup_end
    ts, ys = ts[judged], ys[judged]
    if len(ts) < MIN_JUDGED_SAMPLES:
        raise TooFewSamples(f"{len(ts)} RSS samples after the warm-up; need {MIN_JUDGED_SAMPLES}")
    span = float(ts[-1] - ts[0])
    trend = fit_trend(ts, ys)
    baseline, end = trend.level, trend.level + trend.slope * span
    window = min(FLOOR_WINDOW_SECONDS, span / 2)
    first_floor = float(np.percentile(ys[ts <= ts[0] + window], FLOOR_QUANTILE))
    last_floor = float(np.percentile(ys[ts >= ts[-1] - window], FLOOR_QUANTILE))
    w = _window(len(ts))
    return RssVerdict(
        baseline_kib=baseline,
        end_kib=end,
        fitted_growth=end / baseline - 1,
        floor_growth=last_floor / first_floor - 1,
        window_growth=float(np.median(ys[-w:]) / np.median(ys[:w])) - 1,
        slope_kib_per_s=trend.slope,
        swing_kib=trend.amplitude,
        swing_period_s=trend.period,
        growth_per_hour=trend.slope * 3_600 / baseline,
        judged_seconds=span,
        samples=len(ts),
        limit=RSS_GROWTH_LIMIT,
    )


def rss_profile(t: Sequence[float], rss_kib: Sequence[float], parts: int = 10) -> list[dict[str, float]]:
    """The RSS over the whole run in `parts` equal stretches (warm-up included): each stretch's low 5% quantile
    and median in MiB, to show how memory settled (reported, not judged)."""
    ts, ys = np.asarray(t, dtype=float), np.asarray(rss_kib, dtype=float) / 1024
    edges = np.linspace(ts[0], ts[-1], parts + 1)
    profile = []
    for start, stop in itertools.pairwise(edges):
        part = ys[(ts >= start) & (ts <= stop)]
        if len(part):
            floor, median = np.percentile(part, [FLOOR_QUANTILE, 50])
            profile.append(
                {
                    "from_s": round(float(start)),
                    "floor_mib": round(float(floor), 1),
                    "median_mib": round(float(median), 1),
                }
            )
    return profile


@dataclass(frozen=True)
class LagVerdict(Verdict):
    end_lag: float  # median of the last window, messages
    bound: float  # messages
    slope_per_s: float  # Theil-Sen over the last half of the run, messages per second
    slope_limit: float

    @property
    def ok(self) -> bool:
        return bool(self.end_lag <= self.bound and self.slope_per_s <= self.slope_limit)


def judge_lag(t: Sequence[float], lag: Sequence[float], *, rate: float, bound: float) -> LagVerdict:
    """The lag must end below `bound` (the median of the last quarter, so one slow commit does not decide) and
    must not trend upwards over the last half of the run by more than `LAG_SLOPE_LIMIT` of the produce rate."""
    ts, ys = np.asarray(t, dtype=float), np.asarray(lag, dtype=float)
    last_half = ts >= ts[0] + (ts[-1] - ts[0]) / 2
    ts, ys = ts[last_half], ys[last_half]
    if len(ts) < MIN_JUDGED_SAMPLES:
        raise TooFewSamples(f"{len(ts)} lag samples in the last half; need {MIN_JUDGED_SAMPLES}")
    return LagVerdict(
        end_lag=float(np.median(ys[-_window(len(ts)) :])),
        bound=bound,
        slope_per_s=theil_sen_slope(ts, ys),
        slope_limit=LAG_SLOPE_LIMIT * rate,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Judge the RSS series of a soak report again: `python -m tests.soak.verdict <report.json> [warm-up s]`."""
    import json
    import sys
    from pathlib import Path

    args = list(sys.argv[1:] if argv is None else argv)
    report = json.loads(Path(args[0]).read_text())
    warmup = float(args[1]) if len(args) > 1 else float(report["config"]["warmup_seconds"])
    series = report["rss_samples"]
    for name in ("flow", "api"):
        verdict = judge_rss(series["t"], series[f"{name}_kib"], warmup)
        print(name, json.dumps(verdict.to_dict()))


if __name__ == "__main__":
    main()
