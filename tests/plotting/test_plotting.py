"""What the run figures draw: the article's view and the whole run on a log axis with a floor above rare dips,
the clip threshold and the divergence step, one legend outside the curves; the loss plot's metric axis only
when it is not the loss again and no empty panel; files in the suffix's format with the same bytes each time;
runs plotted in worker processes get the same PDFs as runs plotted in this one."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import yaml

from gradexp.config.loading import load_config
from gradexp.config.schema import PlotConfig
from gradexp.errors import DataError, OutputError
from gradexp.plotting import layout
from gradexp.plotting import runs as run_plots
from gradexp.plotting.grad_norms import grad_norms_figure
from gradexp.plotting.loss import loss_figure
from gradexp.plotting.norms import divergence_step, draw_norm_curve
from gradexp.plotting.output import figure_format, save_figure
from gradexp.drawing import plot_runs
from gradexp.plotting.runs import plot_grad_norms, plot_run
from gradexp.plotting.scales import log_axis_floor, power_of_ten_label
from gradexp.plotting.thresholds import CLIP_MODE_MARKS, Bound, clip_mark
from gradexp.recording.folder import RunFolder
from gradexp.runner import run

STEPS = pd.DataFrame({"step": [1, 2, 3, 4], "epoch": [1, 1, 2, 2], "loss": [4.0, 3.0, 2.0, 1.0]})


@pytest.mark.parametrize("metric_values, axes_count", [([0.1, 0.5], 3), ([3.5, 1.5], 2)])
def test_the_metric_axis_is_left_out_when_the_metric_is_the_loss(metric_values, axes_count: int) -> None:
    evaluations = pd.DataFrame({"step": [2, 4], "epoch": [1, 2], "split": ["dev", "dev"], "loss": [3.5, 1.5],
                                "metric": metric_values})
    figure = loss_figure(STEPS, evaluations, "metric")
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
    plot_runs([(run, plot, ["W"]) for run in runs], processes=2)
    drawn_apart = {path: path.read_bytes() for run in runs for path in sorted(run.glob("*.pdf"))}
    plot_runs([(run, plot, ["W"]) for run in runs], processes=1)
    drawn_here = {path: path.read_bytes() for run in runs for path in sorted(run.glob("*.pdf"))}
    assert len(drawn_here) == 6
    assert drawn_apart == drawn_here


def test_an_error_in_a_plotting_worker_reaches_the_caller_as_itself(tmp_path: Path) -> None:
    runs = [write_run(tmp_path / "good", [4.0, 3.0, 2.0, 1.0]), tmp_path / "missing"]
    with pytest.raises(DataError, match="missing/metrics.csv: no such file") as raised:
        plot_runs([(run, PlotConfig(), []) for run in runs], processes=2)
    assert raised.value.path == str(tmp_path / "missing" / "metrics.csv")


# grad_norms.pdf: what a reader sees ------------------------------------------------------------------------

PARAMETERS = ["rnn_model.W", "rnn_model.U", "rnn_model.b"]


def norms_frame(steps: int = 60, dip_at: tuple[int, ...] = (), diverge: bool = False, clipped: bool = False,
                thresholds: list[float] | None = None) -> pd.DataFrame:
    """A metrics.csv as the runner writes it: W, U, b and total norms around 1-1000, 1e-30 at `dip_at` steps,
    a last non-finite row with `diverge`, post-clip norms capped at 5 with `clipped`."""
    step = np.arange(1, steps + 1)
    rows: dict[str, object] = {"step": step, "epoch": 1 + (step - 1) // 10, "loss": 100.0 / step}
    base = {"rnn_model.W": 1000.0 / step, "rnn_model.U": 300.0 / step + 0.5, "rnn_model.b": 10.0 / np.sqrt(step)}
    for name, values in base.items():
        values = values.copy()
        values[[index - 1 for index in dip_at]] = 1e-30
        rows[f"grad_norm/{name}"] = values
    rows["grad_norm/total"] = np.sqrt(sum(rows[f"grad_norm/{name}"] ** 2 for name in base))
    for name in [*base, "total"]:
        before = rows[f"grad_norm/{name}"]
        rows[f"clipped_norm/{name}"] = np.minimum(before, 5.0) if clipped else before
    rows["clip_threshold"] = thresholds if thresholds is not None else [np.nan] * steps
    rows["clipped"] = (rows["grad_norm/rnn_model.W"] > 5).astype(int) if clipped else 0
    frame = pd.DataFrame(rows)
    if diverge:
        frame.loc[frame.index[-1], ["loss", "grad_norm/rnn_model.W", "grad_norm/total"]] = [np.inf, np.nan, np.nan]
    return frame


def labels_of(axes: plt.Axes) -> list[str]:
    return [line.get_label() for line in axes.get_lines()]


def line_labelled(axes: plt.Axes, label: str):
    (line,) = [line for line in axes.get_lines() if line.get_label() == label]
    return line


def test_log_axis_floor_ignores_rare_dips_but_not_a_run_that_sits_low() -> None:
    regular = np.logspace(-3, 3, 200)
    # 5th percentile of the positive values / 1000, but never below the smallest value.
    expected = max(regular.min(), np.percentile(regular, 5) / 1000)
    assert log_axis_floor([regular]) == pytest.approx(expected)
    # Two dips to 1e-30 among 200 values leave the floor three decades below the lowest twentieth, not at 1e-30.
    assert 1e-7 < log_axis_floor([regular, [1e-30, 1e-31, 0.0, -1.0, np.inf, np.nan]]) < regular.min()
    assert log_axis_floor([np.full(100, 1e-30), [1e3]]) == pytest.approx(1e-30)
    assert log_axis_floor([[0.0, np.nan, -np.inf]]) is None


def test_the_article_view_sits_above_the_whole_run_on_a_log_axis_with_a_floor_above_the_dips() -> None:
    frame = norms_frame(dip_at=(30, 45))
    figure = grad_norms_figure(frame, PARAMETERS, steps=20)
    first, whole = figure.axes
    assert first.get_yscale() == "linear" and whole.get_yscale() == "log"
    assert all(len(line.get_xdata()) == 20 for line in first.get_lines())
    assert all(len(line.get_xdata()) == 60 for line in whole.get_lines())
    bottom = whole.get_ylim()[0]
    # The 1e-30 dips fall off the axis instead of squashing the 0.5-1000 range into its top.
    assert 1e-10 < bottom <= frame[[f"grad_norm/{name}" for name in PARAMETERS]].where(lambda v: v > 1e-29).min().min()
    assert "6 values below" in whole.get_title() and "first 20 steps" in first.get_title()
    plt.close(figure)


def test_log_y_over_every_step_draws_one_panel() -> None:
    figure = grad_norms_figure(norms_frame(), PARAMETERS, steps=None, log_y=True)
    assert len(figure.axes) == 1 and figure.axes[0].get_yscale() == "log"
    plt.close(figure)


def test_one_naming_scheme_solid_before_dashed_after_clipping() -> None:
    figure = grad_norms_figure(norms_frame(clipped=True), PARAMETERS, steps=20,
                                        clip={"mode": "norm", "threshold": 5.0, "norm_type": 2.0})
    assert labels_of(figure.axes[0]) == ["W", "W after clipping", "U", "U after clipping", "b", "b after clipping",
                                         "clip threshold 5 (each tensor's L2 norm)"]
    for name in "WUb":
        before, after = line_labelled(figure.axes[0], name), line_labelled(figure.axes[0], f"{name} after clipping")
        assert (before.get_linestyle(), after.get_linestyle()) == ("-", "--")
        assert before.get_color() == after.get_color()
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == [
        "W", "U", "b", "after clipping (dashed)", "clip threshold 5 (each tensor's L2 norm)"]
    plt.close(figure)


def test_the_legend_covers_no_panel() -> None:
    figure = grad_norms_figure(norms_frame(clipped=True, diverge=True), PARAMETERS, steps=20,
                                        clip={"mode": "norm", "threshold": 5.0})
    renderer = figure.canvas.get_renderer()
    legend = figure.legends[0].get_window_extent(renderer)
    for axes in figure.axes:
        assert not legend.overlaps(axes.get_window_extent(renderer))
    plt.close(figure)


def test_a_fixed_per_tensor_threshold_is_a_horizontal_line_on_both_panels() -> None:
    figure = grad_norms_figure(norms_frame(clipped=True), PARAMETERS, steps=20,
                                        clip={"mode": "norm", "threshold": 5.0, "norm_type": 2.0})
    for axes in figure.axes:
        line = line_labelled(axes, "clip threshold 5 (each tensor's L2 norm)")
        assert list(line.get_ydata()) == [5.0, 5.0] and list(line.get_xdata()) == [0, 1]  # axes-wide
        assert "total" not in labels_of(axes)  # the threshold bounds each tensor, not the total
    assert "each tensor's L2 norm to 5" in " ".join(text.get_text() for text in figure.texts)
    plt.close(figure)


def test_a_global_threshold_names_the_total_and_its_norm_and_draws_the_total() -> None:
    figure = grad_norms_figure(norms_frame(clipped=True), PARAMETERS, steps=20,
                                        clip={"mode": "global_norm", "threshold": 6.0, "norm_type": 1.0})
    axes = figure.axes[1]
    assert "total" in labels_of(axes)
    line = line_labelled(axes, "clip threshold 6 (total L1 norm; curves are L2)")
    assert list(line.get_ydata()) == [6.0, 6.0]
    plt.close(figure)


def test_an_adaptive_threshold_follows_the_logged_value_per_step() -> None:
    logged = [np.nan] * 5 + list(np.linspace(50.0, 80.0, 55))  # ZClip logs NaN during its warm-up
    frame = norms_frame(clipped=True, thresholds=logged)
    figure = grad_norms_figure(frame, PARAMETERS, steps=None,
                                        clip={"mode": "zclip", "alpha": 0.97, "z_threshold": 2.5})
    line = line_labelled(figure.axes[-1], "ZClip threshold per step (total L2 norm)")
    np.testing.assert_array_equal(line.get_ydata(), np.array(logged))
    np.testing.assert_array_equal(line.get_xdata(), frame["step"].to_numpy())
    assert "total" in labels_of(figure.axes[-1])
    plt.close(figure)


@pytest.mark.parametrize("clip, note", [
    ({"mode": "value", "threshold": 5.0}, "each element to ±5"),
    ({"mode": "agc", "threshold": 0.04, "eps": 0.001}, "AGC"),
    ({"mode": "none"}, "no clipping"),
    (None, ""),
])
def test_thresholds_that_bound_no_drawn_norm_get_no_line(clip, note: str) -> None:
    figure = grad_norms_figure(norms_frame(clipped=True, thresholds=[5.0] * 60), PARAMETERS, clip=clip)
    for axes in figure.axes:
        assert not [label for label in labels_of(axes) if "threshold" in label]
    assert note in " ".join(text.get_text() for text in figure.texts)
    plt.close(figure)



def test_every_clip_mode_has_one_row_saying_what_its_threshold_bounds() -> None:
    from gradexp.clipping import CLIP_MODES

    assert set(CLIP_MODE_MARKS) == set(CLIP_MODES.names())
    # A line needs a label, and only a mode that bounds a drawn norm gets one.
    assert all((row.label is None) == (row.bound is Bound.NO_DRAWN_NORM) for row in CLIP_MODE_MARKS.values())
    assert clip_mark({"mode": "norm", "threshold": 1.0}).threshold == 1.0
    assert clip_mark({"mode": "autoclip"}).per_step and clip_mark({"mode": "autoclip"}).threshold is None
    assert clip_mark({"mode": "norm"}).note == "clip: norm"  # no threshold: the mode is only named


def test_a_norm_curve_shows_a_gap_where_the_run_stopped_being_finite() -> None:
    frame = pd.DataFrame({"step": [1, 2, 3, 4], "grad_norm/total": [1.0, np.inf, -np.inf, 4.0]})
    figure, axes = plt.subplots()
    drawn = draw_norm_curve(axes, frame, "grad_norm/total", color="C0", label="total")
    (line,) = axes.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), [1.0, np.nan, np.nan, 4.0])
    np.testing.assert_array_equal(drawn.to_numpy(), [1.0, np.nan, np.nan, 4.0])
    assert line.get_label() == "total"
    plt.close(figure)

def test_a_diverged_run_is_marked_at_its_first_non_finite_step() -> None:
    frame = norms_frame(steps=12, diverge=True)
    assert divergence_step(frame) == 12
    assert divergence_step(norms_frame(steps=12)) is None
    figure = grad_norms_figure(frame, PARAMETERS, steps=5)
    first, whole = figure.axes
    assert "diverged at step 12" not in labels_of(first)  # outside the first five steps
    marker = line_labelled(whole, "diverged at step 12")
    assert list(marker.get_xdata()) == [12, 12]
    assert "diverged at step 12" in [text.get_text() for text in figure.legends[0].get_texts()]
    plt.close(figure)


def test_log_tick_labels_are_plain_text_powers_of_ten() -> None:
    assert power_of_ten_label(1e-4) == "10⁻⁴"
    assert power_of_ten_label(100.0) == "10²"
    assert power_of_ten_label(2e-4) == "" and power_of_ten_label(0.0) == ""


# loss.pdf --------------------------------------------------------------------------------------------------

def test_a_run_that_diverged_before_evaluating_gets_no_empty_held_out_panel() -> None:
    frame = norms_frame(steps=8, diverge=True)
    only_nan = pd.DataFrame({"step": [8], "epoch": [1], "split": ["test"], "loss": [np.nan], "mse": [np.nan]})
    figure = loss_figure(frame, only_nan, "mse")
    (training,) = figure.axes
    assert list(line_labelled(training, "diverged at step 8").get_xdata()) == [8, 8]
    plt.close(figure)
    figure = loss_figure(frame, pd.DataFrame(columns=["step", "epoch", "split", "loss", "mse"]), "mse")
    assert len(figure.axes) == 1
    plt.close(figure)


def test_loss_legends_sit_above_their_panels() -> None:
    evaluations = pd.DataFrame({"step": [20, 40, 60, 60], "epoch": [2, 4, 6, 6], "split": ["dev", "dev", "dev", "test"],
                                "loss": [3.0, 2.0, 1.5, 1.6], "accuracy": [0.2, 0.4, 0.5, 0.45]})
    figure = loss_figure(norms_frame(), evaluations, "accuracy")
    renderer = figure.canvas.get_renderer()
    training, held_out, metric_axis = figure.axes
    for axes in (training, held_out):
        legend = axes.get_legend().get_window_extent(renderer)
        assert legend.y0 >= axes.get_window_extent(renderer).y1 - 1
        assert not any(legend.overlaps(other.get_window_extent(renderer)) for other in figure.axes)
    assert [text.get_text() for text in held_out.get_legend().get_texts()] == ["dev loss", "test loss", "dev accuracy"]
    assert held_out.get_xlim() == training.get_xlim()
    assert metric_axis.get_ylim() == (0.0, 1.0)  # accuracy on its whole range: 0.2 to 0.5 is not the panel's height
    plt.close(figure)


def test_a_loss_spanning_many_decades_goes_on_a_log_axis() -> None:
    exploding = STEPS.assign(loss=[1.0, 1e5, 1e12, 1e20])
    figure = loss_figure(exploding, None, None)
    assert figure.axes[0].get_yscale() == "log"
    plt.close(figure)
    figure = loss_figure(STEPS, None, None)
    assert figure.axes[0].get_yscale() == "linear"
    plt.close(figure)


# Files -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix, magic", [(".pdf", b"%PDF"), (".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_the_suffix_picks_the_format_and_the_same_figure_gives_the_same_bytes(tmp_path: Path, suffix: str,
                                                                              magic: bytes) -> None:
    written = []
    for name in ("first", "second"):
        path = tmp_path / f"{name}{suffix}"
        plot_grad_norms(norms_frame(), path, PARAMETERS, steps=20)
        written.append(path.read_bytes())
    assert written[0].startswith(magic) and written[0] == written[1]
    assert b"CreationDate" not in written[0] and b"<dc:date>" not in written[0]


def test_an_unknown_suffix_is_an_output_error_and_the_figure_is_not_reused(tmp_path: Path) -> None:
    figure = grad_norms_figure(norms_frame(), PARAMETERS)
    with pytest.raises(OutputError, match=r"unknown figure format '\.jpg'; expected \.pdf, \.png or \.svg"):
        save_figure(figure, tmp_path / "x.jpg")
    assert not (tmp_path / "x.jpg").exists() and not plt.get_fignums()  # pyplot holds none of our figures
    assert grad_norms_figure(norms_frame(), PARAMETERS) is not figure
    with pytest.raises(OutputError, match="no suffix"):
        figure_format(tmp_path / "x")


# A run folder ----------------------------------------------------------------------------------------------

def test_plot_run_draws_the_clip_threshold_from_config_yaml_and_survives_a_diverged_run(monkeypatch,
                                                                                         tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    norms_frame(steps=12, diverge=True, clipped=True).to_csv(folder / "metrics.csv", index=False)
    pd.DataFrame({"step": [12], "epoch": [2], "split": ["test"], "loss": [np.nan], "accuracy": [np.nan]}).to_csv(
        folder / "eval.csv", index=False)
    (folder / "config.yaml").write_text(yaml.safe_dump({"clip": {"mode": "norm", "threshold": 2.0, "norm_type": 2.0}}))
    figures: dict[str, plt.Figure] = {}
    monkeypatch.setattr(run_plots, "save_figure", lambda figure, path: figures.setdefault(path.name, figure))
    plot_run(folder, PlotConfig(steps=5), ["W", "U", "b"])
    grad_norms, loss = figures["grad_norms.pdf"], figures["loss.pdf"]
    assert list(line_labelled(grad_norms.axes[0], "clip threshold 2 (each tensor's L2 norm)").get_ydata()) == [2, 2]
    assert "diverged at step 12" in labels_of(grad_norms.axes[1])
    assert len(loss.axes) == 1  # the test row is NaN: no held-out panel
    plt.close("all")


@pytest.mark.parametrize("reduction, label", [("sum", "training loss (sum over the batch)"),
                                              ("mean", "training loss (mean over the batch)"),
                                              (None, "training loss")])
def test_the_training_loss_axis_says_how_a_batch_is_reduced(reduction, label) -> None:
    frame = pd.DataFrame({"step": [1, 2], "epoch": [1, 1], "loss": [40.0, 30.0], "grad_norm/W": [1.0, 1.0]})
    figure = loss_figure(frame, None, None, reduction=reduction)
    assert figure.axes[0].get_ylabel() == label
    plt.close(figure)


def test_a_long_run_is_drawn_faint_step_by_step_under_a_running_median() -> None:
    frame = norms_frame(steps=5000)
    frame["grad_norm/rnn_model.W"] *= np.where(frame["step"] % 2 == 0, 1e6, 1e-6)  # swings of 12 decades
    figure = grad_norms_figure(frame, PARAMETERS, steps=40)
    top, whole = figure.axes[:2]
    assert [line.get_label() for line in top.get_lines()][:3] == ["W", "U", "b"]  # 40 steps: as they are
    lines = [line for line in whole.get_lines() if line.get_label() == "W"]
    (median,) = lines
    expected = frame["grad_norm/rnn_model.W"].rolling(50, center=True, min_periods=1).median()
    np.testing.assert_allclose(median.get_ydata(), expected)
    faint = [line for line in whole.get_lines() if line.get_label().startswith("_") and line.get_alpha() == 0.12]
    assert len(faint) == 3  # every step of W, U and b, unlabelled
    assert "median of every 50 steps" in whole.get_title()
    plt.close(figure)


def test_a_run_that_recorded_no_norms_is_not_taken_for_a_diverged_one() -> None:
    """record.norms false: every norm column holds NaN placeholders; only the loss tells of a divergence."""
    unrecorded = norms_frame(steps=8)
    unrecorded[[column for column in unrecorded.columns if column.startswith(("grad_norm/", "clipped_norm/"))]] = np.nan
    assert divergence_step(unrecorded) is None
    assert divergence_step(unrecorded.assign(loss=[1.0] * 7 + [np.inf])) == 8
    assert divergence_step(norms_frame(steps=8, diverge=True)) == 8


def test_the_practice_run_leaves_the_figures_an_srn_run_is_drawn_on_and_changes_none_of_their_bytes(
        tmp_path: Path) -> None:
    config = load_config(Path(__file__).parents[2] / "configs" / "srn_clip.yaml", ["train.epochs=2"])
    run_dir = run(config, tmp_path).run_dir
    arguments = (run_dir, config.plot, RunFolder.read(run_dir).summary.plot_parameters)
    figure_names = ["grad_norms.pdf", "loss.pdf", "time_grads.pdf"]
    layout.forget_released_figures()
    plot_run(*arguments)
    fresh = {name: (run_dir / name).read_bytes() for name in figure_names}
    layout.forget_released_figures()
    run_plots.draw_practice_run()
    practised = {id(figure) for figure, _ in layout._RELEASED.values()}
    plot_run(*arguments)
    assert {name: (run_dir / name).read_bytes() for name in figure_names} == fresh
    # every figure of the run was drawn on one the practice left (none made anew, none left unused)
    assert {id(figure) for figure, _ in layout._RELEASED.values()} == practised
    assert len(practised) == len(figure_names)
