"""compare.pdf for groups of runs: each group's median curve across its seeds with the interquartile band, one
colour per group, a panel per parameter's pre-clip norm and one for the loss (log y); with --x FIELD, a panel
of the tested metric's group means and confidence intervals against a numeric config field, one line per
setting of the other grouping fields."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradexp.compare.figure import curve_panels, run_style
from gradexp.compare.groups import GroupedComparison, group_label
from gradexp.compare.statistics import CONFIDENCE
from gradexp.errors import OptionError
from gradexp.plotting.layout import title_on_top
from gradexp.recording.layout import STEP
from gradexp.recording.summary import number

QUARTILES = (0.25, 0.5, 0.75)


def quartile_curves(frames: Sequence[Optional[pd.DataFrame]], column: str) -> Optional[pd.DataFrame]:
    """Per step, the 25th, 50th and 75th percentiles of `column` over the runs that recorded it at that step
    (a diverged run's non-finite values and missing steps left out); None when no run recorded it."""
    series = [frame.set_index(STEP)[column].replace([np.inf, -np.inf], np.nan) for frame in frames
              if frame is not None and column in frame]
    if not series:
        return None
    stacked = pd.concat(series, axis=1)
    return pd.DataFrame({quartile: stacked.quantile(quartile, axis=1) for quartile in QUARTILES}).dropna(how="all")


def group_figure(grouped: GroupedComparison, x_field: Optional[str] = None) -> Figure:
    """Every group's median and interquartile band, per step, of each shown parameter's norm, the total and the
    loss; and with `x_field`, grouped.tested's means (CI bars) against that field's values."""
    table = grouped.table

    def draw_groups(axes: Axes, column: str) -> list:
        drawn = []
        for index, group in enumerate(grouped.groups):
            curves = quartile_curves([table.runs[row].metrics for row in group.rows], column)
            if curves is None:
                continue
            style = run_style(index)
            axes.fill_between(curves.index, curves[0.25], curves[0.75], color=style["color"], alpha=0.2, linewidth=0)
            axes.plot(curves.index, curves[0.5], linewidth=1, **style)
            drawn += [curves[0.25].to_numpy(), curves[0.5].to_numpy()]
        return drawn

    labels = [f"#{group.number} {group.label} (n = {len(group.rows)})" for group in grouped.groups]
    figure, axes_list = curve_panels(table, labels, draw_groups, extra_panels=x_field is not None, top=0.85)
    title_on_top(figure, "each group's median over its runs, step by step; bands: the runs' quartiles (25th to 75th "
                         "percentile)")
    if x_field is not None:
        draw_against_field(axes_list[-1], grouped, x_field)
    return figure


def check_x_field(grouped: GroupedComparison, x_field: str) -> None:
    """Raise OptionError unless `x_field` is a grouping field whose every group's value is a number."""
    if x_field not in grouped.by:
        raise OptionError("--x", f"{x_field!r} is not a field the groups differ in; they differ in "
                                 f"{', '.join(grouped.by) or 'nothing'}")
    position = grouped.by.index(x_field)
    if any(number(group.values[position]) is None for group in grouped.groups):
        raise OptionError("--x", f"{x_field!r} is not a number in every group")
    if grouped.tested is None:
        raise OptionError("--x", "the runs have no test metric to draw")


def draw_against_field(axes, grouped: GroupedComparison, x_field: str) -> None:
    """grouped.tested's mean per group (CI as error bars, a lone run's value as a point) against x_field, one
    line per setting of the other grouping fields."""
    position = grouped.by.index(x_field)
    others = [key for key in grouped.by if key != x_field]
    lines: dict[tuple, list[tuple[float, float, float, float]]] = {}
    names: dict[tuple, str] = {}
    for group in grouped.groups:
        found = grouped.summaries[grouped.tested.key][group.number - 1]
        if found.mean is None:
            continue
        key = tuple(value for index, value in enumerate(group.values) if index != position)
        config = grouped.table.runs[group.rows[0]].config or {}
        names[key] = group_label(others, config) if others else grouped.tested.header
        low = found.mean - found.low if found.low is not None else 0.0
        high = found.high - found.mean if found.high is not None else 0.0
        lines.setdefault(key, []).append((float(group.values[position]), found.mean, low, high))
    for index, (key, points) in enumerate(lines.items()):
        points.sort()
        xs, means, lows, highs = (np.array(values) for values in zip(*points))
        axes.errorbar(xs, means, yerr=[lows, highs], marker="o", markersize=4, capsize=3, linewidth=1.1,
                      color=f"C{index % 10}", label=names[key])
    axes.set_xlabel(x_field)
    axes.set_ylabel(grouped.tested.header)
    axes.set_title(f"{grouped.tested.header}: mean and {CONFIDENCE:.0%} CI per group", fontsize="medium", y=1.0)
    if len(lines) > 1 or others:
        axes.legend(fontsize="small", frameon=False)
