"""sweep.pdf: the chosen metric over the grid, and every run's gradient-norm curve.

Top: a heatmap of the metric over the first two grid axes that take more than one value (each
cell the mean over the runs sharing those two values: other axes, seeds), or, with one such axis,
the metric against it (one marker per run, a line through the means). The colour (or y) scale is
metric_scale's: 0 to 1 for a metric bounded so (accuracy, clip_fraction), else padded so that a spread
small next to the values looks small; the label states the runs' actual range. A cell or run without
a value (a diverged run has no test metric) says n/a and its status. Below: one small panel per run
with its total gradient L2 norm before clipping (solid) and after it (dashed), on one shared log scale.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from gradexp.compare.statistics import CONFIDENCE, summarise
from gradexp.plotting.layout import new_figure
from gradexp.plotting.norms import divergence_step, draw_norm_curve, mark_divergence
from gradexp.plotting.output import save_figure
from gradexp.plotting.scales import BOUNDED_METRICS, metric_scale, set_log_scale
from gradexp.recording.layout import CLIPPED_PREFIX, GRAD_PREFIX, TOTAL
from gradexp.sweep.grid import GridAxis

RUN_PANEL_COLUMNS = 8


def varying_axes(axes: Sequence[GridAxis]) -> list[GridAxis]:
    return [axis for axis in axes if len(axis.texts) > 1]


def _metric_values(table: pd.DataFrame, metric: str) -> pd.Series:
    return pd.to_numeric(table[metric], errors="coerce") if metric in table else pd.Series(np.nan, index=table.index)


def is_bounded(metric: str) -> bool:
    """Whether the sweep.csv column `metric` lies in [0, 1]: clip_fraction, or accuracy (test/accuracy ...)."""
    return metric.rsplit("/", 1)[-1] in BOUNDED_METRICS


def range_text(values: pd.Series) -> str:
    """'range 0.04-0.08 over 6 runs, 2 n/a': what the runs' values span."""
    finite = values[np.isfinite(values)]
    missing = f", {len(values) - len(finite)} n/a" if len(finite) < len(values) else ""
    if not len(finite):
        return f"no values over {len(values)} runs"
    return f"range {finite.min():.3g}–{finite.max():.3g} over {len(values)} runs{missing}"


def _cell_font_size(axes: Axes, rows: int, columns: int, notes: Sequence[Sequence[str]]) -> float:
    """The largest font (6 to 12 points) at which every note fits its cell, from the cell's size in inches."""
    box = axes.get_position()
    width, height = axes.figure.get_size_inches()
    cell_width, cell_height = box.width * width / columns * 72, box.height * height / rows * 72
    lines = max(note.count("\n") + 1 for row in notes for note in row)
    characters = max(len(line) for row in notes for note in row for line in note.split("\n"))
    # A line is about 1.3 font sizes tall and a character 0.6 of one wide; keep a margin in the cell.
    fitting = min(0.85 * cell_height / (1.3 * lines), 0.85 * cell_width / (0.6 * max(characters, 1)))
    return float(min(12.0, max(6.0, fitting)))


def _draw_heatmap(axes: Axes, table: pd.DataFrame, rows: GridAxis, columns: GridAxis, metric: str,
                  label: str) -> None:
    values = _metric_values(table, metric)
    grid = np.full((len(rows.texts), len(columns.texts)), np.nan)
    notes = [["" for _ in columns.texts] for _ in rows.texts]
    with_intervals = False
    for i, row_text in enumerate(rows.texts):
        for j, column_text in enumerate(columns.texts):
            cell = (table[rows.key] == row_text) & (table[columns.key] == column_text)
            finite = values[cell].dropna()
            grid[i, j] = finite.mean() if len(finite) else np.nan
            # several runs in a cell (seeds): how far the mean may be off, the half-width of its CI
            half_width = summarise(list(finite)).half_width if len(finite) > 1 else None
            with_intervals = with_intervals or half_width is not None
            statuses = sorted(set(table.loc[cell, "status"].dropna()) - {"completed"})
            shown = "n/a" if np.isnan(grid[i, j]) else f"{grid[i, j]:.3g}"
            notes[i][j] = "\n".join([shown, *([f"± {half_width:.2g}"] if half_width is not None else []), *statuses])
    scale = metric_scale(values, is_bounded(metric))
    norm = scale.norm()
    image = axes.imshow(np.ma.masked_invalid(grid), cmap=matplotlib.colormaps["viridis"].with_extremes(bad="0.85"),
                        norm=norm, aspect="auto")
    if with_intervals:
        label += f"\n(mean; ±: half-width of its {CONFIDENCE:.0%} CI)"
    axes.figure.colorbar(image, ax=axes, label=label)
    size = _cell_font_size(axes, *grid.shape, notes)  # once the colour bar has taken its share of the width
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            # White on the dark (low) half of viridis, black elsewhere and on the grey of a cell with no value.
            dark = not np.isnan(grid[i, j]) and float(norm(np.clip(grid[i, j], scale.low, scale.high))) < 0.45
            axes.text(j, i, notes[i][j], ha="center", va="center", fontsize=size, color="white" if dark else "black")
    # Slanted only when long enough to run into each other (learning rates like 0.0001 side by side).
    slanted = max(map(len, columns.texts)) > 4
    axes.set_xticks(range(len(columns.texts)), columns.texts, rotation=45 if slanted else 0,
                    ha="right" if slanted else "center")
    axes.set_yticks(range(len(rows.texts)), rows.texts)
    axes.set_xlabel(columns.key)
    axes.set_ylabel(rows.key)


def _draw_line(axes: Axes, table: pd.DataFrame, axis: Optional[GridAxis], metric: str, label: str) -> None:
    values = _metric_values(table, metric)
    if axis is None:  # only seeds vary
        x = pd.to_numeric(table["seed"], errors="coerce")
        axes.set_xlabel("seed")
    else:
        positions = {text: index for index, text in enumerate(axis.texts)}
        x = table[axis.key].map(positions)
        axes.set_xticks(range(len(axis.texts)), axis.texts)
        # Every value of the axis in view, those whose runs have no value too (their place says why).
        axes.set_xlim(-0.5, len(axis.texts) - 0.5)
        axes.set_xlabel(axis.key)
    axes.plot(x, values, "o", color="C0", alpha=0.6, label="runs")
    finite = np.isfinite(values)
    if axis is not None and (values[finite].groupby(x[finite]).size() > 1).any():  # seeds: a mean to draw
        means = values.groupby(x).mean()
        axes.plot(means.index, means.to_numpy(), "-", color="C0", label="mean")
        found = {position: summarise(list(group)) for position, group in values[finite].groupby(x[finite])}
        with_interval = [position for position, summary in found.items() if summary.low is not None]
        if with_interval:
            centres = np.array([found[position].mean for position in with_interval])
            axes.errorbar(with_interval, centres, yerr=[centres - [found[p].low for p in with_interval],
                                                        [found[p].high for p in with_interval] - centres],
                          fmt="none", ecolor="C0", capsize=4, linewidth=1.2, label=f"{CONFIDENCE:.0%} CI of the mean")
    # A run without a value (diverged, failed) is named at the top of its place on the axis, in words: a mark
    # on the axis itself would read as a value.
    for position, status in zip(x[~finite], table.loc[~finite, "status"]):
        axes.text(position, 0.97, f"n/a\n{status}", transform=axes.get_xaxis_transform(), ha="center", va="top",
                  color="C3", fontsize="small")
    scale = metric_scale(values, is_bounded(metric))
    if scale.log:
        axes.set_yscale("log")
    axes.set_ylim(scale.low, scale.high)
    axes.set_ylabel(label)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _draw_run(axes: Axes, frame: Optional[pd.DataFrame], title: str) -> list[pd.Series]:
    """One run's total norm before (solid) and after clipping (dashed), and its divergence step, from its
    metrics.csv; returns the values drawn. A run with no metrics.csv or no recorded total says "no norms"."""
    # y given: matplotlib then does not measure the tick labels of the axes to place the title
    axes.set_title(title, fontsize=6, pad=2, y=1.0)
    if frame is None or GRAD_PREFIX + TOTAL not in frame or not frame[GRAD_PREFIX + TOTAL].notna().any():
        axes.text(0.5, 0.5, "no norms", ha="center", va="center", transform=axes.transAxes, fontsize=6)
        return []
    drawn = []
    for prefix, style, colour in ((GRAD_PREFIX, "-", "C3"), (CLIPPED_PREFIX, "--", "C0")):
        if prefix + TOTAL in frame:
            drawn.append(draw_norm_curve(axes, frame, prefix + TOTAL, color=colour, linestyle=style, linewidth=0.7))
    diverged_at = divergence_step(frame)
    if diverged_at is not None:
        mark_divergence(axes, diverged_at)
    return drawn


def _draw_runs(figure: Figure, table: pd.DataFrame, shown: Sequence[GridAxis],
               metrics: Sequence[Optional[pd.DataFrame]], top: float, bottom: float) -> None:
    """Small multiples on one shared log scale, so the runs' norms compare at a glance; laid out by hand
    (a layout engine measures every tick label of every panel, which for a 64-run sweep takes seconds)."""
    rows = math.ceil(len(table) / RUN_PANEL_COLUMNS)
    if not rows:
        return
    grid = figure.add_gridspec(rows, RUN_PANEL_COLUMNS, left=0.05, right=0.99, bottom=bottom, top=top,
                               hspace=0.45, wspace=0.08)
    panels = grid.subplots(sharex=True, sharey=True, squeeze=False)
    with_seeds = table["seed"].nunique() > 1
    drawn: list[pd.Series] = []
    for index, axes in enumerate(panels.flat):
        if index >= len(table):
            axes.set_axis_off()
            continue
        row = table.iloc[index]
        values = [f"{axis.key.split('.')[-1]}={row[axis.key]}" for axis in shown]
        if with_seeds:
            values.append(f"seed {row['seed']}")
        status = "" if row["status"] == "completed" else f" [{row['status']}]"
        drawn += _draw_run(axes, metrics[index], ", ".join(values) + status)
        axes.tick_params(labelsize=6, length=2, pad=1)
    # One floor for all the panels (they share the y axis), so one run's dips do not squash the others.
    if set_log_scale(panels[0][0], drawn) is not None:
        # Minor ticks on 64 panels of many decades each are thousands of tick objects: most of the
        # figure's drawing time, for marks too small to read at this size.
        panels[0][0].yaxis.set_minor_locator(NullLocator())
    for axes in panels.flat:
        axes.label_outer()


def metric_label(metric: str) -> str:
    """A sweep.csv column as a reader names it: test/accuracy -> test accuracy, best_dev/loss -> dev loss."""
    part, _, name = metric.partition("/")
    return f"{'dev' if part == 'best_dev' else part.replace('_', ' ')} {name}".strip()


def sweep_figure(table: pd.DataFrame, axes: Sequence[GridAxis], metric: str, metrics: Sequence[Optional[pd.DataFrame]],
                 title: str) -> Figure:
    shown = varying_axes(axes)
    # Room for the heatmap's rows: each at least 0.45 inch, two lines of a readable cell label.
    rows = len(shown[0].texts) if len(shown) >= 2 else 0
    summary_inches, runs_inches = max(4.8, 1.5 + 0.45 * rows), 1.3 * math.ceil(len(table) / RUN_PANEL_COLUMNS) + 0.5
    height = summary_inches + runs_inches
    figure = new_figure(13, height)
    # Heights in inches turned into figure fractions: the summary panel on top, the runs' panels below.
    summary_axes = figure.add_axes((0.1, (runs_inches + 1.0) / height, 0.6, (summary_inches - 1.5) / height))
    label = metric_label(metric)
    if len(shown) >= 2:
        _draw_heatmap(summary_axes, table, shown[0], shown[1], metric, label)
    else:
        _draw_line(summary_axes, table, shown[0] if shown else None, metric, label)
    cells = int(np.prod([len(axis.texts) for axis in shown[:2]]))
    averaged = "; each cell the mean over the runs sharing its values" if len(shown) >= 2 and len(table) > cells else ""
    summary_axes.set_title(f"{title}: {label}\n{range_text(_metric_values(table, metric))}{averaged}",
                           fontsize="medium", y=1.0)
    figure.text(0.5, (runs_inches - 0.1) / height, "total gradient L2 norm per step: before clipping (solid), "
                "after (dashed)", ha="center", va="top", fontsize="small")
    _draw_runs(figure, table, shown, metrics, top=(runs_inches - 0.45) / height, bottom=0.3 / height)
    return figure


def write_sweep_pdf(table: pd.DataFrame, axes: Sequence[GridAxis], metric: str,
                    metrics: Sequence[Optional[pd.DataFrame]],
                    path: Path, title: str) -> None:
    save_figure(sweep_figure(table, axes, metric, metrics, title), path)
