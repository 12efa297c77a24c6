"""`gradexp plot`: the format follows the suffix, no file is replaced without --force, and the run's own
plot and clip settings are used unless an option overrides them. Run folders are written by hand: no training."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from gradexp.cli import main
from gradexp.plotting import runs as run_plots
from tests.plotting.test_plotting import PARAMETERS, labels_of, norms_frame

# Every file a run writes: none of them may be the default output of a re-plot.
RUN_FILES = ("grad_norms.pdf", "loss.pdf", "metrics.csv", "eval.csv", "summary.json", "config.yaml", "best.pt",
             "last.pt")


def write_run(folder: Path, plot: dict | None = None, clip: dict | None = None,
              plot_parameters: list[str] | None = None) -> Path:
    """A finished run: metrics.csv, config.yaml (plot and clip sections), summary.json, its own grad_norms.pdf."""
    folder.mkdir(parents=True)
    norms_frame(clipped=True).to_csv(folder / "metrics.csv", index=False)
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "clip": clip or {"mode": "none"}, "plot": {"steps": None, "log_y": False, "params": None, **(plot or {})}}))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "test": None, "best_dev": None,
                                                     "plot_parameters": plot_parameters or PARAMETERS}))
    (folder / "grad_norms.pdf").write_bytes(b"the run's own figure")
    return folder


def invoke(*args: object):
    return CliRunner().invoke(main, ["plot", *map(str, args)])


@pytest.fixture
def drawn(monkeypatch) -> list[plt.Figure]:
    """The figures `gradexp plot` draws, kept instead of written."""
    figures: list[plt.Figure] = []
    monkeypatch.setattr(run_plots, "save_figure", lambda figure, path: figures.append(figure))
    yield figures
    plt.close("all")


@pytest.mark.parametrize("suffix, magic", [(".pdf", b"%PDF"), (".png", b"\x89PNG"), (".svg", b"<?xml")])
def test_the_output_format_follows_the_suffix(tmp_path: Path, suffix: str, magic: bytes) -> None:
    run = write_run(tmp_path / "run")
    target = tmp_path / f"figure{suffix}"
    result = invoke(run / "metrics.csv", "-o", target)
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote {target}\n"
    first = target.read_bytes()
    assert first.startswith(magic)
    assert invoke(run / "metrics.csv", "-o", target, "--force").exit_code == 0
    assert target.read_bytes() == first  # no timestamp in any format


@pytest.mark.parametrize("name, complaint", [
    ("figure.jpg", "unknown figure format '.jpg'; expected .pdf, .png or .svg"),
    ("figure", "no suffix to name the figure format; expected .pdf, .png or .svg"),
])
def test_an_unknown_suffix_is_one_line_and_exit_2(tmp_path: Path, name: str, complaint: str) -> None:
    run = write_run(tmp_path / "run")
    result = invoke(run / "metrics.csv", "-o", tmp_path / name)
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / name}: {complaint}\n"
    assert not (tmp_path / name).exists()


def test_the_default_output_never_replaces_a_file_the_run_wrote(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    result = invoke(run / "metrics.csv")
    assert result.exit_code == 0, result.output
    written = run / run_plots.REPLOT_NAME
    assert result.output == f"wrote {written}\n" and written.read_bytes().startswith(b"%PDF")
    assert run_plots.REPLOT_NAME not in RUN_FILES
    assert (run / "grad_norms.pdf").read_bytes() == b"the run's own figure"


@pytest.mark.parametrize("output", [None, "grad_norms.pdf"])
def test_an_existing_file_is_replaced_only_with_force(tmp_path: Path, output: str | None) -> None:
    run = write_run(tmp_path / "run")
    target = run / (output or run_plots.REPLOT_NAME)
    if output is None:
        target.write_bytes(b"an earlier re-plot")
    before = target.read_bytes()
    options = ["-o", target] if output else []
    result = invoke(run / "metrics.csv", *options)
    assert result.exit_code == 2
    assert result.stderr == f"error: {target}: exists; pass --force to replace it, or -o to write another file\n"
    assert target.read_bytes() == before
    assert invoke(run / "metrics.csv", *options, "--force").exit_code == 0
    assert target.read_bytes().startswith(b"%PDF")


def test_the_runs_plot_settings_are_used(tmp_path: Path, drawn: list[plt.Figure]) -> None:
    run = write_run(tmp_path / "run", plot={"steps": 7, "log_y": True, "params": ["W"]},
                    clip={"mode": "norm", "threshold": 5.0, "norm_type": 2.0}, plot_parameters=["rnn_model.W"])
    assert invoke(run / "metrics.csv").exit_code == 0
    (figure,) = drawn
    first = figure.axes[0]
    assert first.get_yscale() == "log"
    assert labels_of(first) == ["W", "W after clipping", "clip threshold 5 (each tensor's L2 norm)"]
    assert len(first.get_lines()[0].get_xdata()) == 7


def test_options_override_the_runs_plot_settings(tmp_path: Path, drawn: list[plt.Figure]) -> None:
    run = write_run(tmp_path / "run", plot={"steps": 7, "log_y": True}, plot_parameters=["rnn_model.W"])
    assert invoke(run / "metrics.csv", "--steps", "12", "--linear-y", "--params", "U,b").exit_code == 0
    (figure,) = drawn
    first = figure.axes[0]
    assert first.get_yscale() == "linear"
    assert labels_of(first) == ["U", "U after clipping", "b", "b after clipping"]
    assert len(first.get_lines()[0].get_xdata()) == 12


def test_a_csv_outside_a_run_folder_plots_every_parameter(tmp_path: Path, drawn: list[plt.Figure]) -> None:
    norms_frame().to_csv(tmp_path / "loose.csv", index=False)
    assert invoke(tmp_path / "loose.csv", "-o", tmp_path / "loose.png").exit_code == 0
    (figure,) = drawn
    assert labels_of(figure.axes[0]) == ["W", "U", "b"]


def write_time_gradients(folder: Path, name: str = "time_grads.csv") -> Path:
    """A time_grads.csv (step, t1 ... t4) beside the run's metrics.csv, which holds a sigma_max column."""
    frame = pd.DataFrame({"step": [1, 2, 3], "t1": [1e-3, 0.0, 1e-9], "t2": [1e-2, 1e-4, 1e-6],
                          "t3": [0.1, 0.01, 1e-3], "t4": [1.0, 1.0, 1.0]})
    frame.to_csv(folder / name, index=False)
    metrics = pd.read_csv(folder / "metrics.csv")
    metrics.assign(**{"sigma_max/rnn_model.U": 1.5}).to_csv(folder / "metrics.csv", index=False)
    return folder / name


@pytest.mark.parametrize("name", ["time_grads.csv", "copy-of-time-gradients.csv"])
def test_a_time_grads_csv_is_drawn_as_time_grads_pdf_whatever_its_name(tmp_path: Path, name: str,
                                                                        drawn: list[plt.Figure]) -> None:
    run = write_run(tmp_path / "run")
    result = invoke(write_time_gradients(run, name))
    written = run / run_plots.TIME_REPLOT_NAME
    assert result.exit_code == 0 and result.output == f"wrote {written}\n"
    assert run_plots.TIME_REPLOT_NAME not in RUN_FILES
    (figure,) = drawn
    heatmap, profiles, sigma = figure.axes[:3]
    assert heatmap.images[0].get_array().shape == (4, 3)  # positions x steps
    assert [line.get_label() for line in sigma.get_lines()] == ["σ_max(U)", "σ = 1"]


@pytest.mark.parametrize("option", [["--params", "W"], ["--steps", "3"], ["--log-y"]])
def test_metrics_options_are_refused_for_a_time_grads_csv(tmp_path: Path, option: list[str]) -> None:
    run = write_run(tmp_path / "run")
    result = invoke(write_time_gradients(run), *option)
    assert result.exit_code == 2
    assert result.stderr == f"error: {option[0]}: applies to a metrics.csv, not to a time_grads.csv\n"
