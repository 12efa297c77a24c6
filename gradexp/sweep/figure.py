"""sweep.pdf: the chosen metric over the grid, and every run's gradient-norm curve.

Top: a heatmap of the metric over the first two grid axes that take more than one value (each
cell the mean over the runs sharing those two values: other axes, seeds), or, with one such axis,
the metric against it (one marker per run, a line through the means). Below: one small panel per
run with its total gradient L2 norm before clipping (solid) and after it (dashed), log scale.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from gradexp.errors import DataError  # noqa: E402
from gradexp.plotting import CLIPPED_PREFIX, GRAD_PREFIX, read_metrics, save_figure  # noqa: E402
from gradexp.sweep.grid import GridAxis  # noqa: E402

RUN_PANEL_COLUMNS = 8
TOTAL = "total"


def varying_axes(axes: Sequence[GridAxis]) -> list[GridAxis]:
    return [axis for axis in axes if len(axis.texts) > 1]


def _metric_values(table: pd.DataFrame, metric: str) -> pd.Series:
    return pd.to_numeric(table[metric], errors="coerce") if metric in table else pd.Series(np.nan, index=table.index)


def _draw_heatmap(axes: plt.Axes, table: pd.DataFrame, rows: GridAxis, columns: GridAxis, metric: str,
                  label: str) -> None:
    values = _metric_values(table, metric)
    grid = np.full((len(rows.texts), len(columns.texts)), np.nan)
    notes = [["" for _ in columns.texts] for _ in rows.texts]
    for i, row_text in enumerate(rows.texts):
        for j, column_text in enumerate(columns.texts):
            cell = (table[rows.key] == row_text) & (table[columns.key] == column_text)
            finite = values[cell].dropna()
            grid[i, j] = finite.mean() if len(finite) else np.nan
            statuses = sorted(set(table.loc[cell, "status"]) - {"completed"})
            notes[i][j] = ("n/a" if np.isnan(grid[i, j]) else f"{grid[i, j]:.3g}") + \
                ("".join(f"\n{status}" for status in statuses))
    image = axes.imshow(np.ma.masked_invalid(grid), cmap=plt.get_cmap("viridis").with_extremes(bad="0.85"),
                        aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            axes.text(j, i, notes[i][j], ha="center", va="center", fontsize="x-small", color="white"
                      if not np.isnan(grid[i, j]) and grid[i, j] < np.nanmean(grid) else "black")
    axes.set_xticks(range(len(columns.texts)), columns.texts, rotation=45, ha="right")
    axes.set_yticks(range(len(rows.texts)), rows.texts)
    axes.set_xlabel(columns.key)
    axes.set_ylabel(rows.key)
    axes.figure.colorbar(image, ax=axes, label=label)


def _draw_line(axes: plt.Axes, table: pd.DataFrame, axis: Optional[GridAxis], metric: str, label: str) -> None:
    values = _metric_values(table, metric)
    if axis is None:  # only seeds vary
        axes.plot(table["seed"], values, "o")
        axes.set_xlabel("seed")
    else:
        positions = {text: index for index, text in enumerate(axis.texts)}
        x = table[axis.key].map(positions)
        axes.plot(x, values, "o", alpha=0.6, label="runs")
        means = values.groupby(x).mean()
        axes.plot(means.index, means.to_numpy(), "-", color="C0", label="mean")
        axes.set_xticks(range(len(axis.texts)), axis.texts)
        axes.set_xlabel(axis.key)
        axes.legend(fontsize="small")
    axes.set_ylabel(label)


def _draw_run(axes: plt.Axes, run_dir: Optional[Path], title: str) -> None:
    # y given: matplotlib then does not measure the tick labels of the axes to place the title
    axes.set_title(title, fontsize=6, pad=2, y=1.0)
    try:
        frame = read_metrics(run_dir / "metrics.csv") if run_dir is not None else None
    except DataError:  # a run that crashed before its first rows
        frame = None
    if frame is None or not len(frame) or not frame[GRAD_PREFIX + TOTAL].notna().any():
        axes.text(0.5, 0.5, "no norms", ha="center", va="center", transform=axes.transAxes, fontsize=6)
        return
    for prefix, style, colour in ((GRAD_PREFIX, "-", "C3"), (CLIPPED_PREFIX, "--", "C0")):
        values = frame[prefix + TOTAL].replace([np.inf, -np.inf], np.nan)
        axes.plot(frame["step"], values.where(values > 0), style, color=colour, linewidth=0.7)


def _draw_runs(figure: plt.Figure, table: pd.DataFrame, shown: Sequence[GridAxis],
               run_dirs: Sequence[Optional[Path]], top: float, bottom: float) -> None:
    """Small multiples on one shared log scale, so the runs' norms compare at a glance; laid out by hand
    (a layout engine measures every tick label of every panel, which for a 64-run sweep takes seconds)."""
    rows = math.ceil(len(table) / RUN_PANEL_COLUMNS)
    grid = figure.add_gridspec(rows, RUN_PANEL_COLUMNS, left=0.05, right=0.99, bottom=bottom, top=top,
                               hspace=0.45, wspace=0.08)
    panels = grid.subplots(sharex=True, sharey=True, squeeze=False)
    with_seeds = table["seed"].nunique() > 1
    for index, axes in enumerate(panels.flat):
        if index >= len(table):
            axes.set_axis_off()
            continue
        row = table.iloc[index]
        values = [f"{axis.key.split('.')[-1]}={row[axis.key]}" for axis in shown]
        if with_seeds:
            values.append(f"seed {row['seed']}")
        status = "" if row["status"] == "completed" else f" [{row['status']}]"
        _draw_run(axes, run_dirs[index], ", ".join(values) + status)
        axes.tick_params(labelsize=6, length=2, pad=1)
    if any(line for axes in panels.flat for line in axes.get_lines()):
        panels[0][0].set_yscale("log")
        # Minor ticks on 64 panels of many decades each are thousands of tick objects: most of the
        # figure's drawing time, for marks too small to read at this size.
        panels[0][0].yaxis.set_minor_locator(NullLocator())
    for axes in panels.flat:
        axes.label_outer()


def metric_label(table: pd.DataFrame, metric: str) -> str:
    """'test accuracy' rather than 'test' when every run has the same task metric."""
    names = table["metric"].dropna().unique() if "metric" in table else []
    return f"{metric} {names[0]}" if metric in ("test", "best_dev") and len(names) == 1 else metric


def sweep_figure(table: pd.DataFrame, axes: Sequence[GridAxis], metric: str, run_dirs: Sequence[Optional[Path]],
                 title: str) -> plt.Figure:
    shown = varying_axes(axes)
    summary_inches, runs_inches = 4.8, 1.3 * math.ceil(len(table) / RUN_PANEL_COLUMNS) + 0.5
    height = summary_inches + runs_inches
    figure = plt.figure(figsize=(13, height))
    # Heights in inches turned into figure fractions: the summary panel on top, the runs' panels below.
    summary_axes = figure.add_axes((0.1, (runs_inches + 1.0) / height, 0.6, (summary_inches - 1.5) / height))
    label = metric_label(table, metric)
    if len(shown) >= 2:
        _draw_heatmap(summary_axes, table, shown[0], shown[1], metric, label)
    else:
        _draw_line(summary_axes, table, shown[0] if shown else None, metric, label)
    cells = int(np.prod([len(axis.texts) for axis in shown[:2]]))
    summary_axes.set_title(f"{title}: {label}" + (" (mean over the runs sharing each value)" if len(table) > cells
                                                  else ""), fontsize="medium")
    figure.text(0.5, (runs_inches - 0.1) / height, "total gradient L2 norm per step: before clipping (solid), "
                "after (dashed)", ha="center", va="top", fontsize="small")
    _draw_runs(figure, table, shown, run_dirs, top=(runs_inches - 0.45) / height, bottom=0.3 / height)
    return figure


def write_sweep_pdf(table: pd.DataFrame, axes: Sequence[GridAxis], metric: str, run_dirs: Sequence[Optional[Path]],
                    path: Path, title: str) -> None:
    save_figure(sweep_figure(table, axes, metric, run_dirs, title), path)
