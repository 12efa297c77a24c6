"""grad_flow.pdf: how a feed-forward stack's gradient fades from the last layer to the first, step by step.

Each sigmoid layer multiplies the backward signal by σ′ ≤ 1/4 and by its weights, so the first layers'
gradients vanish (seed 003): the heatmap shows every layer's weight-gradient norm (rows from the input
up to the output) at every step, and the panel below the first layer's norm over the last one's.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gradexp.plotting.layout import FIGURE_WIDTH, legend_above, panel_grid, unique_handles
from gradexp.plotting.norms import THRESHOLD_COLOUR
from gradexp.plotting.scales import finite_values, set_log_scale
from gradexp.recording.layout import DEPTH_RATIO, GRAD_PREFIX, STEP, short_parameter_name


def layer_name(parameter: str, layers: Sequence[str]) -> str:
    """A layer's row label: its parameter's short name without a trailing ".weight" (layers.0.weight -> layers.0)."""
    name = short_parameter_name(parameter, layers)
    return name.removesuffix(".weight") or name


def grad_flow_figure(frame: pd.DataFrame, layers: Sequence[str], title: str = "") -> Figure:
    """log10 of each layer's gradient norm before clipping over steps (x) and layers (y, input at the bottom),
    and metrics.csv's depth_ratio per step on a log axis with the line 1 (no fading)."""
    figure, (heatmap, ratio) = panel_grid(2, 1, FIGURE_WIDTH, top=0.75, row_gap=0.85, bottom=0.55, left=1.3,
                                          right=1.1, panel_height=2.6)
    if title:
        figure.suptitle(title, fontsize="medium", y=1 - 0.08 / figure.get_figheight(), va="top")
    steps = frame[STEP].to_numpy()
    norms = np.stack([finite_values(frame, GRAD_PREFIX + layer).to_numpy(dtype=float) for layer in layers])
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(norms)
    width = float(np.median(np.diff(steps))) if len(steps) > 1 else 1.0
    image = heatmap.imshow(np.ma.masked_invalid(np.where(np.isfinite(logs), logs, np.nan)), origin="lower",
                           aspect="auto", interpolation="nearest",
                           cmap=matplotlib.colormaps["viridis"].with_extremes(bad="0.85"),
                           extent=(steps[0] - width / 2, steps[-1] + width / 2, -0.5, len(layers) - 0.5))
    heatmap.set_yticks(range(len(layers)), [layer_name(layer, layers) for layer in layers])
    heatmap.set_xlabel("step")
    heatmap.set_ylabel("layer (input at the bottom)")
    heatmap.set_title("log10 of each layer's weight-gradient L2 norm, before clipping", fontsize="small", y=1.0)
    box = heatmap.get_position()
    colour_axes = figure.add_axes((box.x1 + 0.015, box.y0, 0.02, box.height))
    figure.colorbar(image, cax=colour_axes).set_label("log10 ‖g‖", fontsize="small")
    values = finite_values(frame, DEPTH_RATIO)
    ratio.plot(frame[STEP], values, linewidth=1.1, color="C0",
               label=f"‖g {layer_name(layers[0], layers)}‖ / ‖g {layer_name(layers[-1], layers)}‖")
    ratio.axhline(1.0, color=THRESHOLD_COLOUR, linestyle=":", linewidth=1.2, label="1: no fading")
    ratio.set_xlabel("step")
    ratio.set_ylabel("first layer / last layer")
    set_log_scale(ratio, [values, np.array([1.0])])
    legend_above(ratio, unique_handles([ratio]))
    return figure
