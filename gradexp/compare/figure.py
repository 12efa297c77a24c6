"""compare.pdf: every run's curves overlaid, one colour per run, one panel per parameter plus the loss."""

from __future__ import annotations

import textwrap
from typing import Callable, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gradexp.compare.table import ComparisonTable
from gradexp.plotting.layout import panel_grid
from gradexp.plotting.norms import draw_norm_curve
from gradexp.plotting.scales import set_log_scale
from gradexp.recording.layout import GRAD_PREFIX, TOTAL, short_parameter_name

# Ten colours, then the same ten dashed, dotted ...: runs past the tenth stay distinguishable.
LINE_STYLES = ["-", "--", ":", "-."]
PANEL_COLUMNS = 2
FIGURE_WIDTH = 11.0
PANEL_HEIGHT = 2.4
# Characters per legend line: about the width of the 11-inch figure at the legend's font size.
LEGEND_LABEL_WIDTH = 150


def run_style(index: int) -> dict[str, str]:
    return {"color": f"C{index % 10}", "linestyle": LINE_STYLES[(index // 10) % len(LINE_STYLES)]}


def comparison_figure(table: ComparisonTable) -> Figure:
    """Pre-clip gradient norms of each shown parameter and of all together, and the training loss, per step.

    Every panel holds one line per run that recorded the quantity (non-finite values left as gaps), on a
    log scale whose lower end is plotting.scales.log_axis_floor over every run's values, so one run's dips to
    1e-30 do not squash the others (the title says how many values fall below it); the total-norm panel
    marks the explosion threshold with a grey dotted line. The legend names each run by the config fields
    that differ between the runs.
    """
    def draw_runs(axes: Axes, column: str) -> list:
        return [draw_norm_curve(axes, run.metrics, column, linewidth=1, label=label, **run_style(index))
                for index, (run, label) in enumerate(zip(table.runs, table.labels))
                if run.metrics is not None and column in run.metrics]

    figure, _ = curve_panels(table, table.labels, draw_runs)
    return figure


def curve_panels(table: ComparisonTable, labels: Sequence[str], draw: Callable[[Axes, str], list],
                 extra_panels: int = 0, top: float = 0.55) -> tuple[Figure, list[Axes]]:
    """compare.pdf's panels, one per shown parameter's pre-clip norm, then the loss, each filled by
    `draw(axes, column)` (which returns the values it drew) on a log axis, with `extra_panels` empty ones after
    them and a legend of `labels` in run_style's order under them: the figure and all its panels."""
    panels = [GRAD_PREFIX + name for name in table.parameters] + ["loss"]
    # A label of many differing fields is wrapped rather than cut off at the figure's edges.
    labels = [textwrap.fill(label, LEGEND_LABEL_WIDTH, break_long_words=False) for label in labels]
    legend_lines = sum(label.count("\n") + 1 for label in labels)
    # Laid out by hand (see plotting.layout): above each panel a title of up to two lines, below it the x
    # label; under the panels the legend, a fifth of an inch per line.
    figure, axes_list = panel_grid(len(panels) + extra_panels, PANEL_COLUMNS, FIGURE_WIDTH, top=top, row_gap=0.95,
                                   bottom=0.55 + 0.2 * legend_lines + 0.15, left=0.75, right=0.25, column_gap=0.8,
                                   panel_height=PANEL_HEIGHT)
    for axes, column in zip(axes_list, panels):
        drawn = draw(axes, column)
        if column == GRAD_PREFIX + TOTAL:
            axes.axhline(table.explode_at, color="0.5", linestyle=":", linewidth=1)
            drawn.append([table.explode_at])  # kept above the axis' lower end
        limits = set_log_scale(axes, drawn)
        if limits is None:  # no run recorded it: an empty panel, on the same kind of axis as the others
            axes.set_yscale("log")
        axes.set_xlabel("step")
        note = limits.note() if limits else ""
        # y given: matplotlib then does not measure every tick label to place the title (40% of the drawing)
        axes.set_title(panel_title(column, table) + (f"\n({note})" if note else ""), fontsize="medium", y=1.0)
    handles = [Line2D([], [], label=label, **run_style(index)) for index, label in enumerate(labels)]
    figure.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.1 / figure.get_figheight()), ncols=1,
                  fontsize="small", frameon=False)
    return figure, axes_list


def panel_title(column: str, table: ComparisonTable) -> str:
    """What a panel of compare.pdf shows: a parameter's pre-clip norm, the total (with the explosion threshold)
    or the loss."""
    if column == "loss":
        return "training loss"
    name = column[len(GRAD_PREFIX):]
    if name == TOTAL:
        return f"total gradient L2 norm before clipping (dotted: explode at {table.explode_at:g})"
    return f"{short_parameter_name(name, table.parameters)} gradient L2 norm before clipping"
