"""grad_flow.pdf as a reader sees it: one heatmap row per layer from the input up, holding log10 of its gradient
norm, and below it metrics.csv's depth_ratio under the same steps, with the line 1."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradexp.plotting.grad_flow import grad_flow_figure

LAYERS = [f"layers.{index}.weight" for index in range(3)]
STEPS = np.arange(1, 21)
# layer k's norm: 10^(k - 3), fading towards the input; 0 at one step of the first layer
NORMS = np.array([[10.0 ** (k - 3) for k in range(3)] for _ in STEPS])
NORMS[4, 0] = 0.0
FRAME = pd.DataFrame({"step": STEPS, **{f"grad_norm/{layer}": NORMS[:, k] for k, layer in enumerate(LAYERS)},
                      "depth_ratio": NORMS[:, 0] / NORMS[:, -1]})


def test_each_layer_is_a_row_from_the_input_up_holding_log10_of_its_norm() -> None:
    heatmap = grad_flow_figure(FRAME, LAYERS, "stack").axes[0]
    image = heatmap.get_images()[0].get_array()
    expected = np.log10(np.where(NORMS > 0, NORMS, np.nan)).T
    np.testing.assert_allclose(image.filled(np.nan), expected)
    assert image.mask[0, 4] and image.mask.sum() == 1
    assert [label.get_text() for label in heatmap.get_yticklabels()] == ["layers.0", "layers.1", "layers.2"]


def test_the_depth_ratio_is_drawn_with_the_line_1_under_the_heatmaps_steps() -> None:
    figure = grad_flow_figure(FRAME, LAYERS, "stack")
    heatmap, ratio = figure.axes[0], figure.axes[1]
    assert ratio.get_xlim() == heatmap.get_xlim() == (0.5, 20.5)
    curve, line_one = ratio.get_lines()
    assert curve.get_label() == "‖g layers.0‖ / ‖g layers.2‖"
    np.testing.assert_array_equal(curve.get_ydata(), FRAME["depth_ratio"])  # 0 at step 5: off the log axis
    assert list(line_one.get_ydata()) == [1.0, 1.0]
