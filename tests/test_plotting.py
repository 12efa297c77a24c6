"""What the loss plot draws: the metric gets its own axis only when it is not the loss again; runs plotted
in worker processes get the same PDFs as runs plotted in this one."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from gradexp import plotting
from gradexp.config.schema import PlotConfig
from gradexp.errors import DataError

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


def write_run(folder: Path, losses: list[float]) -> Path:
    """A run folder with the metrics.csv and eval.csv plot_run reads."""
    folder.mkdir()
    steps = range(1, len(losses) + 1)
    pd.DataFrame({"step": steps, "epoch": [1 + (step - 1) // 2 for step in steps], "loss": losses,
                  "grad_norm/W": [2.0 * loss for loss in losses], "grad_norm/total": [3.0 * loss for loss in losses],
                  }).to_csv(folder / "metrics.csv", index=False)
    pd.DataFrame({"step": [2, 4], "epoch": [1, 2], "split": ["dev", "dev"], "loss": losses[1:4:2],
                  "accuracy": [0.2, 0.4]}).to_csv(folder / "eval.csv", index=False)
    return folder


def test_runs_plotted_in_worker_processes_match_plots_drawn_here(tmp_path: Path) -> None:
    runs = [write_run(tmp_path / f"run{index}", [4.0 + index, 3.0, 2.0, 1.0 + index]) for index in range(3)]
    plot = PlotConfig()
    plotting.plot_runs([(run, plot, ["W"]) for run in runs], processes=2)
    drawn_apart = {path: path.read_bytes() for run in runs for path in sorted(run.glob("*.pdf"))}
    plotting.plot_runs([(run, plot, ["W"]) for run in runs], processes=1)
    drawn_here = {path: path.read_bytes() for run in runs for path in sorted(run.glob("*.pdf"))}
    assert len(drawn_here) == 6
    assert drawn_apart == drawn_here


def test_an_error_in_a_plotting_worker_reaches_the_caller_as_itself(tmp_path: Path) -> None:
    runs = [write_run(tmp_path / "good", [4.0, 3.0, 2.0, 1.0]), tmp_path / "missing"]
    with pytest.raises(DataError, match="missing/metrics.csv: no such file") as raised:
        plotting.plot_runs([(run, PlotConfig(), []) for run in runs], processes=2)
    assert raised.value.path == str(tmp_path / "missing" / "metrics.csv")
