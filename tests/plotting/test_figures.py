"""compare.pdf and sweep.pdf as a reader sees them: one run's 1e-30 dips do not squash the others, a metric's
colour scale neither hides nor dramatises a spread, a run without a value or without norms is shown as such.
Every run folder and table is written by hand: no training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gradexp.compare import build_table, gather_runs
from gradexp.compare.figure import comparison_figure
from gradexp.plotting.scales import metric_scale
from gradexp.sweep.figure import is_bounded, metric_label, sweep_figure
from gradexp.sweep.grid import GridAxis
from tests.plotting.test_plotting import norms_frame

NORM_COLUMNS = ["grad_norm/rnn_model.W", "grad_norm/rnn_model.U", "grad_norm/rnn_model.b"]


def write_run(folder: Path, frame: pd.DataFrame, summary: Optional[dict] = None) -> Path:
    folder.mkdir(parents=True)
    frame.to_csv(folder / "metrics.csv", index=False)
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


# compare.pdf -----------------------------------------------------------------------------------------------

def test_one_runs_dips_to_1e30_do_not_squash_the_other_runs(tmp_path: Path) -> None:
    write_run(tmp_path / "runs" / "saturated", norms_frame(dip_at=(20, 21, 40)))
    write_run(tmp_path / "runs" / "healthy", norms_frame())
    table = build_table(gather_runs([tmp_path / "runs"]).runs)
    figure = comparison_figure(table)
    for axes in figure.axes[:3]:  # W, U, b
        bottom = axes.get_ylim()[0]
        assert axes.get_yscale() == "log"
        assert 1e-12 < bottom < 0.5  # the healthy run's smallest norm is 0.63 (b at step 60)
        assert "3 values below" in axes.get_title()
    plt.close(figure)


def test_a_diverged_run_with_null_summary_values_is_compared(tmp_path: Path) -> None:
    summary = {"status": "diverged", "diverged_at_step": 12, "best_dev": None, "test": None, "metric": "accuracy",
               "final_loss": float("nan"), "plot_parameters": ["rnn_model.W", "rnn_model.U", "rnn_model.b"]}
    write_run(tmp_path / "runs" / "diverged", norms_frame(steps=12, diverge=True), summary)
    write_run(tmp_path / "runs" / "healthy", norms_frame())
    figure = comparison_figure(build_table(gather_runs([tmp_path / "runs"]).runs))
    assert all(axes.get_yscale() == "log" for axes in figure.axes)
    assert len(figure.axes[0].get_lines()) == 2
    plt.close(figure)


# sweep.pdf: the colour scale -------------------------------------------------------------------------------

def test_a_bounded_metric_is_coloured_on_its_whole_range() -> None:
    scale = metric_scale(pd.Series([0.04, 0.08, np.nan]), bounded=True)
    assert (scale.low, scale.high, scale.log) == (0.0, 1.0, False)


def test_a_spread_small_next_to_the_values_is_coloured_as_small() -> None:
    scale = metric_scale(pd.Series([2.8, 3.3, 3.0]), bounded=False)
    assert scale.low <= 2.8 and scale.high >= 3.3
    assert (3.3 - 2.8) / (scale.high - scale.low) < 0.35  # a third of the map, not all of it
    assert not scale.log


def test_values_spanning_decades_get_a_log_scale_and_no_value_gets_a_default() -> None:
    scale = metric_scale(pd.Series([12.5, 1.7e6]), bounded=False)
    assert (scale.low, scale.high, scale.log) == (12.5, 1.7e6, True)
    assert metric_scale(pd.Series([np.nan, np.nan]), bounded=False) == metric_scale(pd.Series([], dtype=float), False)


def test_which_metrics_are_bounded() -> None:
    assert is_bounded("test/accuracy") and is_bounded("best_dev/accuracy") and is_bounded("clip_fraction")
    assert not is_bounded("final_loss") and not is_bounded("test/mse") and not is_bounded("best_dev/loss")


@pytest.mark.parametrize("column, label", [("test/accuracy", "test accuracy"), ("best_dev/loss", "dev loss"),
                                           ("max_grad_norm/total", "max grad norm total"),
                                           ("clip_fraction", "clip fraction")])
def test_a_metric_column_is_labelled_as_a_reader_names_it(column: str, label: str) -> None:
    assert metric_label(column) == label


# sweep.pdf: the figure -------------------------------------------------------------------------------------

LRS = ("0.01", "0.1")
THRESHOLDS = ("1", "5", "none")
GRID = [GridAxis("optimizer.lr", LRS, (0.01, 0.1)), GridAxis("clip.threshold", THRESHOLDS, (1.0, 5.0, None))]


def sweep_table(test_values: list[Optional[float]], statuses: list[str]) -> pd.DataFrame:
    rows = [{"optimizer.lr": lr, "clip.threshold": threshold} for lr in LRS for threshold in THRESHOLDS]
    return pd.DataFrame(rows).assign(seed=0, status=statuses, **{"test/accuracy": test_values},
                                     final_loss=[2.9, 3.1, None, 3.3, 2.8, None], **{"best_dev/accuracy": None})


@pytest.fixture
def run_metrics() -> list[Optional[pd.DataFrame]]:
    """Six runs' metrics.csv: healthy, one with 1e-30 dips, a diverged one, none (no folder), none (a run that
    crashed before its first rows), and one without a total column."""
    return [norms_frame(), norms_frame(dip_at=(10, 11)), norms_frame(steps=12, diverge=True), None, None,
            norms_frame().drop(columns=["grad_norm/total", "clipped_norm/total"])]


def summary_axes(figure: plt.Figure) -> plt.Axes:
    return figure.axes[0]


def test_null_cells_say_n_a_and_their_status_and_the_title_states_the_range(run_metrics) -> None:
    table = sweep_table([0.04, 0.08, None, 0.06, None, 0.05],
                        ["completed", "completed", "diverged", "completed", "failed", "completed"])
    figure = sweep_figure(table, GRID, "test/accuracy", run_metrics, "sweep")
    heatmap = summary_axes(figure)
    notes = [text.get_text() for text in heatmap.texts]
    assert notes == ["0.04", "0.08", "n/a\ndiverged", "0.06", "n/a\nfailed", "0.05"]
    (image,) = heatmap.get_images()
    assert (image.norm.vmin, image.norm.vmax) == (0.0, 1.0)  # accuracy: its whole range, not 0.04-0.08
    assert "test accuracy" in heatmap.get_title() and "range 0.04–0.08 over 6 runs, 2 n/a" in heatmap.get_title()
    plt.close(figure)


def test_cell_labels_are_readable_at_print_size() -> None:
    texts = tuple(str(index) for index in range(8))
    axes = [GridAxis("optimizer.lr", texts, texts), GridAxis("clip.threshold", texts, texts)]
    rows = [{"optimizer.lr": a, "clip.threshold": b} for a in texts for b in texts]
    table = pd.DataFrame(rows).assign(seed=0, status="completed", **{"test/accuracy": np.linspace(0.04, 0.12, 64)
                                                                     .round(3)})
    table.loc[63, ["status", "test/accuracy"]] = ["diverged", None]
    figure = sweep_figure(table, axes, "test/accuracy", [None] * 64, "sweep")
    sizes = {text.get_fontsize() for text in summary_axes(figure).texts}
    assert min(sizes) >= 9  # x-small (7 points) on a 13-inch figure printed at half size is unreadable
    plt.close(figure)


def test_run_panels_without_a_folder_metrics_or_total_say_no_norms_and_share_a_floor(run_metrics) -> None:
    table = sweep_table([0.04, 0.08, None, 0.06, None, 0.05],
                        ["completed", "completed", "diverged", "not run", "failed", "completed"])
    figure = sweep_figure(table, GRID, "test/accuracy", run_metrics, "sweep")
    panels = [axes for axes in figure.axes if axes.get_title(loc="center").startswith("lr=")]
    assert len(panels) == 6
    for index in (3, 4, 5):
        assert [text.get_text() for text in panels[index].texts] == ["no norms"]
    assert panels[0].get_yscale() == "log" and panels[0].get_ylim()[0] > 1e-12  # the dips do not set it
    assert [line.get_xdata()[0] for line in panels[2].get_lines() if line.get_label() == "diverged at step 12"] == [12]
    plt.close(figure)


def test_a_line_of_runs_marks_the_runs_without_a_value(run_metrics) -> None:
    table = sweep_table([0.04, None, None, 0.06, 0.07, 0.05], ["completed", "diverged", "diverged", "completed",
                                                              "completed", "completed"])
    table = table[table["optimizer.lr"] == "0.01"].reset_index(drop=True)
    figure = sweep_figure(table, [GRID[1]], "final_loss", run_metrics[:3], "sweep")
    line = summary_axes(figure)
    # threshold none: final_loss is null there; said in words at its place, not drawn as a value
    assert [(text.get_position()[0], text.get_text()) for text in line.texts] == [(2, "n/a\ndiverged")]
    assert line.get_xlim() == (-0.5, 2.5)  # its place on the axis is in view
    # one run per threshold: no mean line to draw
    assert [artist.get_label() for artist in line.get_lines()] == ["runs"]
    low, high = line.get_ylim()
    assert low <= 2.9 and high >= 3.1 and (3.1 - 2.9) / (high - low) < 0.35
    plt.close(figure)


def test_cells_and_points_with_seeds_show_the_mean_and_its_confidence_interval() -> None:
    """Three seeds per grid point: each heatmap cell says its mean and the half-width of Student t's 95% CI;
    with one grid axis, the interval is an error bar around the mean."""
    seeded = pd.concat([sweep_table([0.04 + 0.01 * seed] * 6, ["completed"] * 6).assign(seed=seed)
                        for seed in range(3)], ignore_index=True)
    seeded.loc[seeded["clip.threshold"] == "none", "test/accuracy"] = [0.1, 0.2, 0.6, 0.1, 0.2, 0.6]
    half = stats.t.ppf(0.975, 2) * np.std([0.04, 0.05, 0.06], ddof=1) / np.sqrt(3)
    figure = sweep_figure(seeded, GRID, "test/accuracy", [None] * 18, "sweep")
    notes = [text.get_text() for text in summary_axes(figure).texts]
    assert notes[0] == f"0.05\n± {half:.2g}" and notes[2].startswith("0.3\n± ")
    plt.close(figure)
    one_axis = seeded[seeded["optimizer.lr"] == "0.01"].reset_index(drop=True)
    figure = sweep_figure(one_axis, [GRID[1]], "test/accuracy", [None] * 9, "sweep")
    bars = [child for child in summary_axes(figure).containers if child.get_label().startswith("95% CI")]
    (segments,) = [collection.get_segments() for collection in bars[0].lines[2]]
    low, high = segments[0][:, 1]
    assert (low, high) == (pytest.approx(0.05 - half), pytest.approx(0.05 + half))
    plt.close(figure)
