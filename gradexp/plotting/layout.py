"""Fixed-size figures laid out by hand, reused once saved, and their legends.

No tight_layout or constrained layout: they measure every label's extent and took half of a run's drawing
time, paid twice per run by a 64-point sweep. Sizes are in inches.

A figure that save_figure has written is handed back here (release_figure), and the next figure of the same
geometry is that one, reset: building a figure, its axes and their ticks was about 30% of drawing a run's
two figures, and a sweep's runs draw the same figures again and again. The reset leaves nothing of the
last drawing (tests/plotting/test_layout.py draws runs on reused figures and on new ones: the same bytes).
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from typing import Any, Iterable, Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

FIGURE_WIDTH = 7.0
PANEL_HEIGHT = 2.9
LEGEND_FONT_POINTS = 8.33  # matplotlib's "small" at the default 10-point font


def stacked_panels(count: int, top: float, gap: float, bottom: float, left: float = 0.8, right: float = 0.25,
                   panel_height: float = PANEL_HEIGHT) -> tuple[Figure, list[Axes]]:
    """A FIGURE_WIDTH-inch figure of `count` panels one above the other; margins and gaps in inches."""
    return panel_grid(count, 1, FIGURE_WIDTH, top=top, row_gap=gap, bottom=bottom, left=left, right=right,
                      panel_height=panel_height)


def panel_grid(count: int, columns: int, width: float, top: float, row_gap: float, bottom: float, left: float,
               right: float, panel_height: float = PANEL_HEIGHT, column_gap: float = 0.0
               ) -> tuple[Figure, list[Axes]]:
    """A `width`-inch figure of `count` panels in rows of `columns`, filled row by row; margins and gaps in
    inches, the height what the rows need. A released figure of this geometry, reset, when there is one."""
    geometry = (count, columns, width, top, row_gap, bottom, left, right, panel_height, column_gap)
    released = _RELEASED.pop(geometry, None)
    if released is not None:
        figure, panels = released
        _reset(figure, panels)
        _GEOMETRIES[figure] = (geometry, panels)
        return figure, panels
    rows = math.ceil(count / columns)
    height = top + rows * panel_height + (rows - 1) * row_gap + bottom
    panel_width = (width - left - right - (columns - 1) * column_gap) / columns
    figure = new_figure(width, height)
    panels = []
    for index in range(count):
        row, column = divmod(index, columns)
        panel_bottom = height - top - row * (panel_height + row_gap) - panel_height
        panel_left = left + column * (panel_width + column_gap)
        panels.append(figure.add_axes((panel_left / width, panel_bottom / height, panel_width / width,
                                       panel_height / height)))
    _GEOMETRIES[figure] = (geometry, panels)
    return figure, panels


def new_figure(width: float, height: float) -> Figure:
    """A figure of that size (inches) on the file backend's canvas, made without pyplot: pyplot keeps every
    figure it made open until closed, and warns past twenty."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


# Released figures, one per geometry, the most recently released last; the oldest go past RELEASED_KEPT.
RELEASED_KEPT = 8
_RELEASED: OrderedDict[tuple, tuple[Figure, list[Axes]]] = OrderedDict()
# Each figure panel_grid made and has not handed out again: its geometry and panels.
_GEOMETRIES: weakref.WeakKeyDictionary[Figure, tuple[tuple, list[Axes]]] = weakref.WeakKeyDictionary()


def release_figure(figure: Figure) -> bool:
    """Hand a written figure back for reuse; False when it was not made by panel_grid. The caller must not use it
    any more."""
    made = _GEOMETRIES.pop(figure, None)
    if made is None:
        return False
    geometry, panels = made
    _RELEASED[geometry] = (figure, panels)
    _RELEASED.move_to_end(geometry)
    while len(_RELEASED) > RELEASED_KEPT:
        _RELEASED.popitem(last=False)
    return True


def forget_released_figures() -> None:
    """Make every figure anew from now on (until the next release)."""
    _RELEASED.clear()


def _reset(figure: Figure, panels: list[Axes]) -> None:
    """Everything a figure's last drawing added or changed, undone; its axes and their ticks kept."""
    for artist in [*figure.texts, *figure.legends]:
        artist.remove()
    if figure._suptitle is not None:
        figure._suptitle.remove()
        figure._suptitle = None
    for axes in figure.axes:
        if axes not in panels:  # a twin axis (the loss figure's metric)
            figure.delaxes(axes)
    for axes in panels:
        for artist in [*axes.lines, *axes.collections, *axes.patches, *axes.texts, *axes.images, *axes.artists]:
            artist.remove()
        if axes.legend_ is not None:
            axes.legend_.remove()
        axes.set_title("")
        axes.set_xlabel("")
        axes.set_ylabel("")
        axes.set_xscale("linear")  # and the scale's own tick locators and formatters
        axes.set_yscale("linear")
        axes.dataLim.set(Bbox.null())
        axes.ignore_existing_data_limits = True
        axes.set_autoscale_on(True)
        axes.set_prop_cycle(None)  # the colour cycle from its first colour


def title_on_top(figure: Figure, title: str) -> None:
    """`title` (a run folder's name) centred at the top of the figure, a twelfth of an inch from its edge."""
    if title:
        figure.suptitle(title, fontsize="medium", y=1 - 0.08 / figure.get_figheight(), va="top")


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
