"""time_grads.pdf as a reader sees it: the heatmap holds log10 ‖∂L/∂h_t‖ with exact zeros grey, the profiles are
the chosen steps' values, and σ_max sits under the same steps as the heatmap's columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradexp.plotting.time_grads import chosen_steps, time_grads_figure

STEPS = np.arange(1, 11)
# position t's gradient at step s: 2^(t - s), with t = 1 exactly 0 from step 6 on (tanh saturated)
NORMS = np.array([[2.0 ** (t - s) if (t > 1 or s < 6) else 0.0 for t in range(1, 5)] for s in STEPS])
TIME_GRADIENTS = pd.DataFrame({"step": STEPS, **{f"t{t}": NORMS[:, t - 1] for t in range(1, 5)}})
METRICS = pd.DataFrame({"step": STEPS, "sigma_max/rnn_model.U": np.linspace(0.5, 2.0, 10)})


def test_the_heatmap_holds_log10_of_each_position_with_zeros_masked() -> None:
    heatmap = time_grads_figure(TIME_GRADIENTS, METRICS).axes[0]
    image = heatmap.get_images()[0].get_array()
    assert image.shape == (4, 10)  # positions up, steps across
    expected = np.log10(np.where(NORMS > 0, NORMS, np.nan)).T
    np.testing.assert_allclose(image.filled(np.nan), expected)
    assert image.mask[0, 5:].all() and not image.mask[1:].any()


def test_the_profiles_are_the_chosen_steps_values() -> None:
    profiles = time_grads_figure(TIME_GRADIENTS, METRICS).axes[1]
    chosen = chosen_steps(STEPS, NORMS)
    # the first, the strongest at t = 1 (step 1 here), the last, and steps between
    assert chosen[0] == 0 and chosen[-1] == 9
    lines = [line for line in profiles.get_lines() if line.get_label().startswith("step ")]
    assert [line.get_label() for line in lines] == [f"step {STEPS[index]}" for index in chosen]
    for line, index in zip(lines, chosen):
        np.testing.assert_allclose(line.get_ydata(), np.where(NORMS[index] > 0, NORMS[index], np.nan))


def test_sigma_max_is_drawn_with_the_line_1_under_the_heatmaps_steps() -> None:
    figure = time_grads_figure(TIME_GRADIENTS, METRICS)
    heatmap, sigma = figure.axes[0], figure.axes[2]  # (axes[3]: the colourbar)
    assert sigma.get_xlim() == heatmap.get_xlim() == (0.5, 10.5)
    curve, line_one = sigma.get_lines()
    np.testing.assert_array_equal(curve.get_ydata(), METRICS["sigma_max/rnn_model.U"])
    assert list(line_one.get_ydata()) == [1.0, 1.0]
