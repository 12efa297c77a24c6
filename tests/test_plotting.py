"""What the loss plot draws: the metric gets its own axis only when it is not the loss again."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from gradexp import plotting

STEPS = pd.DataFrame({"step": [1, 2, 3, 4], "epoch": [1, 1, 2, 2], "loss": [4.0, 3.0, 2.0, 1.0]})


@pytest.mark.parametrize("metric_values, axes_count", [([0.1, 0.5], 3), ([3.5, 1.5], 2)])
def test_the_metric_axis_is_left_out_when_the_metric_is_the_loss(monkeypatch, tmp_path: Path, metric_values,
                                                                  axes_count: int) -> None:
    figures: list[plt.Figure] = []
    monkeypatch.setattr(plotting, "save_figure", lambda figure, path: figures.append(figure))
    evaluations = pd.DataFrame({"step": [2, 4], "epoch": [1, 2], "split": ["dev", "dev"], "loss": [3.5, 1.5],
                                "metric": metric_values})
    plotting.plot_losses(STEPS, evaluations, tmp_path / "loss.pdf", "metric")
    (figure,) = figures
    # training panel, held-out panel, and the metric's twin axis unless it would retrace the dev loss
    assert len(figure.axes) == axes_count
    plt.close(figure)
