"""A quantity over steps and rows (positions in a sequence, layers of a stack) as a log-colour image."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Cells whose value is 0 or not finite: no colour of the scale, a light grey.
MISSING_GREY = "0.85"


def draw_log_heatmap(figure: Figure, axes: Axes, steps: np.ndarray, values: np.ndarray,
                     rows: tuple[float, float], colour_label: str) -> None:
    """log10 of `values` (rows x recorded steps) on `axes`, each step a column as wide as the steps between
    recordings, the rows spanning `rows` (bottom, top) on the y axis; a colourbar beside the axes."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(values)
    width = float(np.median(np.diff(steps))) if len(steps) > 1 else 1.0
    image = axes.imshow(np.ma.masked_invalid(np.where(np.isfinite(logs), logs, np.nan)), origin="lower",
                        aspect="auto", interpolation="nearest",
                        cmap=matplotlib.colormaps["viridis"].with_extremes(bad=MISSING_GREY),
                        extent=(steps[0] - width / 2, steps[-1] + width / 2, *rows))
    box = axes.get_position()
    colour_axes = figure.add_axes((box.x1 + 0.015, box.y0, 0.02, box.height))
    figure.colorbar(image, cax=colour_axes).set_label(colour_label, fontsize="small")
