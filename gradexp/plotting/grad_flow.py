"""grad_flow.pdf: how a feed-forward stack's gradient fades from the last layer to the first, step by step.

Each sigmoid layer multiplies the backward signal by σ′ ≤ 1/4 and by its weights, so the first layers'
gradients vanish (seed 003): the heatmap shows every layer's weight-gradient norm (rows from the input
up to the output) at every step, and the panel below the first layer's norm over the last one's.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gradexp.plotting.heatmaps import draw_log_heatmap
from gradexp.plotting.layout import FIGURE_WIDTH, legend_above, panel_grid, title_on_top, unique_handles
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
    title_on_top(figure, title)
    steps = frame[STEP].to_numpy()
    norms = np.stack([finite_values(frame, GRAD_PREFIX + layer).to_numpy(dtype=float) for layer in layers])
    draw_log_heatmap(figure, heatmap, steps, norms, (-0.5, len(layers) - 0.5), "log10 ‖g‖")
    heatmap.set_yticks(range(len(layers)), [layer_name(layer, layers) for layer in layers])
    heatmap.set_xlabel("step")
    heatmap.set_ylabel("layer (input at the bottom)")
    heatmap.set_title("log10 of each layer's weight-gradient L2 norm, before clipping", fontsize="small", y=1.0)
    values = finite_values(frame, DEPTH_RATIO)
    ratio.plot(frame[STEP], values, linewidth=1.1, color="C0",
               label=f"‖g {layer_name(layers[0], layers)}‖ / ‖g {layer_name(layers[-1], layers)}‖")
    ratio.axhline(1.0, color=THRESHOLD_COLOUR, linestyle=":", linewidth=1.2, label="1: no fading")
    ratio.set_xlabel("step")
    ratio.set_ylabel("first layer / last layer")
    set_log_scale(ratio, [values, np.array([1.0])])
    # a step sits below its heatmap column
    ratio.set_xlim(heatmap.get_xlim())
    legend_above(ratio, unique_handles([ratio]))
    return figure
