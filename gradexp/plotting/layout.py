"""Fixed-size figures laid out by hand, and their legends.

No tight_layout or constrained layout: they measure every label's extent and took half of a run's drawing
time, paid twice per run by a 64-point sweep. Sizes are in inches.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

FIGURE_WIDTH = 7.0
PANEL_HEIGHT = 2.9
LEGEND_FONT_POINTS = 8.33  # matplotlib's "small" at the default 10-point font


def stacked_panels(count: int, top: float, gap: float, bottom: float, left: float = 0.8, right: float = 0.25,
                   panel_height: float = PANEL_HEIGHT) -> tuple[plt.Figure, list[Axes]]:
    """A FIGURE_WIDTH-inch figure of `count` panels one above the other; margins and gaps in inches."""
    return panel_grid(count, 1, FIGURE_WIDTH, top=top, row_gap=gap, bottom=bottom, left=left, right=right,
                      panel_height=panel_height)


def panel_grid(count: int, columns: int, width: float, top: float, row_gap: float, bottom: float, left: float,
               right: float, panel_height: float = PANEL_HEIGHT, column_gap: float = 0.0
               ) -> tuple[plt.Figure, list[Axes]]:
    """A `width`-inch figure of `count` panels in rows of `columns`, filled row by row; margins and gaps in
    inches, the height what the rows need."""
    rows = math.ceil(count / columns)
    height = top + rows * panel_height + (rows - 1) * row_gap + bottom
    panel_width = (width - left - right - (columns - 1) * column_gap) / columns
    figure = plt.figure(figsize=(width, height))
    panels = []
    for index in range(count):
        row, column = divmod(index, columns)
        panel_bottom = height - top - row * (panel_height + row_gap) - panel_height
        panel_left = left + column * (panel_width + column_gap)
        panels.append(figure.add_axes((panel_left / width, panel_bottom / height, panel_width / width,
                                       panel_height / height)))
    return figure, panels


def legend_rows(labels: Sequence[str], width: float) -> int:
    """The fewest rows that let a legend of `labels`, filled column by column, fit in `width` inches."""
    for wanted in range(1, len(labels) + 1):
        columns = math.ceil(len(labels) / wanted)
        rows = math.ceil(len(labels) / columns)  # how matplotlib spreads the entries over the columns
        groups = [labels[start:start + rows] for start in range(0, len(labels), rows)]
        # Handle and padding, then about half an em per character: measuring the text would cost a draw.
        if sum(0.6 + 0.5 * LEGEND_FONT_POINTS / 72 * max(map(len, group)) for group in groups) <= width:
            return rows
    return max(len(labels), 1)


def unique_handles(panels: Iterable[Axes]) -> dict[str, Any]:
    """Legend label -> its first artist over `panels` (a threshold drawn in both panels is named once)."""
    handles: dict[str, Any] = {}
    for axes in panels:
        for handle, label in zip(*axes.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    return handles


def legend_above(axes: Axes, handles: dict[str, Any]) -> None:
    """A one-row legend of `handles` just above `axes`, outside its data."""
    axes.legend(handles.values(), handles.keys(), loc="lower left", bbox_to_anchor=(0, 1.0), ncols=len(handles),
                fontsize="small", frameon=False, borderaxespad=0.2)
