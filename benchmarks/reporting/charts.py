"""PNG charts of a report (matplotlib, Agg: no display needed): each figure beside its same-run baseline, grouped
by unit, and every ratio on one axis."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window

import matplotlib.pyplot as plt
from matplotlib.ticker import StrMethodFormatter

from benchmarks.reporting.model import Figure
from benchmarks.reporting.peer_figures import PEERS_FILE

VALUE_COLOUR, BASELINE_COLOUR = "#1f6fb4", "#b0b0b0"
COUNTED = ("msgs/s", "rows/s", "MB")
# One chart per unit: (file name, title, log scale). A unit not listed gets no paired chart (its ratios still do).
PAIRED = {
    "msgs/s": ("throughput_ingest", "Ingest throughput vs its same-run baseline (msgs/s)", False),
    "rows/s": ("throughput_replay", "Replay throughput vs raw produce (rows/s)", False),
    "ms": ("latency_ms", "Latency vs its same-run baseline (ms, log scale)", True),
    "s": ("latency_produce", "Produce -> queryable vs produce -> committed (s)", False),
    "MB": ("memory", "Peak RSS (MB)", False),
}
RATIOS_TITLE = "Each figure / its same-run baseline (log scale; green: better than the baseline)"
PEERS_TITLE = "K2 / the peer in the same run (log scale; green: K2 better, red: K2 worse)"
# A benchmark whose figures of one unit get a chart of their own, kept out of that unit's chart above:
# (source file, unit) -> (file name, title, log scale).
OWN = {
    ("first_commit.json", "s"): (
        "restart_first_commit",
        "Restart: process start -> first read / first commit vs the same run's `import flows.ingest` (s)",
        False,
    ),
}


def draw(figures: list[Figure], directory: Path) -> dict[str, Path]:
    """Writes the charts into `directory`; returns {chart name: path} of those written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    peers = [f for f in figures if f.source == PEERS_FILE and f.ratio is not None]
    if peers:
        written["peers"] = _ratios(peers, directory / "peers.png", PEERS_TITLE)
    figures = [f for f in figures if f.source != PEERS_FILE]  # their own chart: a peer is not a K2 baseline
    ratios = [f for f in figures if f.ratio is not None]
    if ratios:
        written["ratios"] = _ratios(ratios, directory / "ratios.png")
    for unit, (name, title, log) in PAIRED.items():
        chosen = [f for f in figures if f.unit == unit and (f.source, unit) not in OWN]
        if chosen:
            written[name] = _paired(chosen, title, unit, log, directory / f"{name}.png")
    for (source, unit), (name, title, log) in OWN.items():
        chosen = [f for f in figures if f.source == source and f.unit == unit]
        if chosen:
            written[name] = _paired(chosen, title, unit, log, directory / f"{name}.png")
    return written


def _label(figure: Figure) -> str:
    return f"{figure.id}\n{figure.label}" + (f" vs {figure.baseline_label}" if figure.baseline_label else "")


def _ratios(figures: list[Figure], path: Path, title: str = RATIOS_TITLE) -> Path:
    height = 0.9 + 0.32 * len(figures)
    fig, ax = plt.subplots(figsize=(10, height))
    names = [f.id for f in figures][::-1]
    values = [f.ratio for f in figures][::-1]
    colours = [_ratio_colour(f) for f in figures][::-1]
    bars = ax.barh(names, values, color=colours)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    for bar, value in zip(bars, values, strict=True):
        ax.annotate(f"{value:.3g}", (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7)  # fmt: skip
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=7)
    ax.margins(x=0.15)
    return _save(fig, path)


def _ratio_colour(figure: Figure) -> str:
    if figure.lower_is_better is None:
        return BASELINE_COLOUR
    better = figure.ratio < 1 if figure.lower_is_better else figure.ratio > 1  # type: ignore[operator]
    return "#3a9a4b" if better else "#c8553d"


def _paired(figures: list[Figure], title: str, unit: str, log: bool, path: Path) -> Path:
    """Horizontal bars, figure above its baseline, one pair per row (grows downwards, never too wide to read)."""
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.55 * len(figures)))
    rows = range(len(figures))[::-1]
    ax.barh([r + 0.2 for r in rows], [f.value for f in figures], height=0.4, color=VALUE_COLOUR, label="figure")
    if any(f.baseline is not None for f in figures):
        baselines = [f.baseline or 0.0 for f in figures]
        ax.barh([r - 0.2 for r in rows], baselines, height=0.4, color=BASELINE_COLOUR, label="same-run baseline")
    ax.set_yticks(list(rows), [_label(f) for f in figures], fontsize=7)
    ax.set_xlabel(unit)
    if log:
        ax.set_xscale("log")
    elif unit in COUNTED:
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))  # 150,000 rather than 1.5e5
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
