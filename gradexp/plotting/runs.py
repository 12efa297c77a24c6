"""A run folder's figures (grad_norms.pdf, loss.pdf, and time_grads.pdf, cell_grads.pdf or grad_flow.pdf where
the run recorded what they show) for `run` and `sweep`, and `gradexp plot`'s re-plot of any metrics.csv; each
written by save_figure, looked up here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gradexp.config.schema import PlotConfig
from gradexp.errors import DataError, OptionError, OutputError
from gradexp.plotting.grad_flow import grad_flow_figure
from gradexp.plotting.grad_norms import grad_norms_figure
from gradexp.plotting.loss import loss_figure
from gradexp.plotting.norms import select_parameters
from gradexp.plotting.output import figure_format, render_figure, save_figure
from gradexp.plotting.thresholds import clip_section
from gradexp.plotting.time_grads import time_grads_figure
from gradexp.recording.folder import RunFolder, is_time_gradients_csv, read_metrics, read_time_gradients
from gradexp.recording.layout import (CELL_GRADS, CLIP_THRESHOLD, CLIPPED, DEPTH_RATIO, EPOCH, GRAD_FLOW_PLOT,
                                      GRAD_NORMS_PLOT, LOSS, LOSS_PLOT, LR, METRICS, SPLIT, STEP, TIME_GRADIENT_PLOTS,
                                      MetricsColumns, parameter_names, time_gradient_columns)

# The default output of `gradexp plot`: a name no run writes, so a re-plot never replaces the run's own figure.
REPLOT_NAME = "grad_norms-replot.pdf"
TIME_REPLOT_NAME = "time_grads-replot.pdf"


def plot_grad_norms(frame: pd.DataFrame, out: Path, parameters: Sequence[str], steps: Optional[int] = None,
                    log_y: bool = False, title: str = "", clip: Optional[Mapping[str, Any]] = None) -> None:
    """grad_norms_figure written to `out` (its suffix picks the format)."""
    save_figure(grad_norms_figure(frame, parameters, steps, log_y, title, clip), out)


def plot_run(run_dir: Path, plot: PlotConfig, parameters: Sequence[str]) -> None:
    """A run folder's figures (run_figures), from its metrics.csv, eval.csv, config.yaml and time_grads.csv /
    cell_grads.csv, written into it."""
    record = RunFolder.read(run_dir)
    if record.metrics is None:
        raise DataError(str(run_dir / METRICS), "no such file")
    if not len(record.metrics):
        return
    chosen = select_parameters(parameter_names(record.metrics.columns), parameters, str(run_dir / METRICS))
    for name, figure in run_figures(record.metrics, record.evaluations(), record.config, record.time_gradients(),
                                    run_dir.name, plot, chosen):
        save_figure(figure, run_dir / name)


def run_figures(frame: pd.DataFrame, evaluations: Optional[pd.DataFrame], config: Optional[Mapping[str, Any]],
                time_gradients: Mapping[str, pd.DataFrame], title: str, plot: PlotConfig, parameters: Sequence[str]
                ) -> Iterator[tuple[str, Figure]]:
    """A run's figures, each with its file name, made one at a time (a figure written before the next is made
    can be reused for it): grad_norms.pdf of `parameters` and loss.pdf; time_grads.pdf (cell_grads.pdf) of
    the gradients through time of each state in `time_gradients` (h, c); grad_flow.pdf for a feed-forward
    stack's run (metrics.csv has depth_ratio). `config` is config.yaml flattened (its clip mode)."""
    yield GRAD_NORMS_PLOT, grad_norms_figure(frame, parameters, plot.steps, plot.log_y, title, clip_section(config))
    metric = evaluations.columns[-1] if evaluations is not None else None  # eval.csv's last column
    yield LOSS_PLOT, loss_figure(frame, evaluations, metric, title, (config or {}).get("loss.reduction"))
    for state, gradients in time_gradients.items():
        yield TIME_GRADIENT_PLOTS[state], time_grads_figure(gradients, frame, title, state)
    if DEPTH_RATIO in frame.columns:
        yield GRAD_FLOW_PLOT, grad_flow_figure(frame, parameters, title)


def draw_practice_run() -> None:
    """Draw the figures of a made-up recurrent run of 25 steps into memory, and keep them for reuse.

    A process's first figures cost about 0.1 s more than later ones (fonts loaded, text measured, figures and
    axes made): a figure worker draws these while the run it waits for still imports torch and trains, so
    that run's own figures, drawn after its last step, do not pay it. The made-up run has an SRN's
    parameters, clipping, evaluations and gradients through time, so its figures have the geometry of
    such a run's and are reused for them.
    """
    steps = np.arange(1, 26)
    parameters = ["rnn_model.W", "rnn_model.U", "rnn_model.b"]
    columns = MetricsColumns.of(parameters, sigma_parameters=["rnn_model.U"], update_ratios=True)
    growth = np.exp(steps / 5.0)
    values = {STEP: steps, EPOCH: (steps + 4) // 5, LOSS: 200.0 / growth ** 0.1, LR: np.full(len(steps), 0.2),
              CLIP_THRESHOLD: np.full(len(steps), 5.0), CLIPPED: np.ones(len(steps))}
    for column in columns.header:
        values.setdefault(column, growth * (1 + len(column) % 7))
    frame = pd.DataFrame(values, columns=columns.header)
    evaluations = pd.DataFrame({STEP: [25, 25], EPOCH: [5, 5], SPLIT: ["dev", "test"], LOSS: [3.6, 3.7],
                                "accuracy": [0.06, 0.07]})
    length = 20
    time_gradients = pd.DataFrame(np.outer(growth, np.linspace(1.0, 5.0, length)),
                                  columns=time_gradient_columns(length)[1:]).assign(**{STEP: steps})
    time_gradients = time_gradients[time_gradient_columns(length)]
    config = {"clip.mode": "norm", "clip.threshold": 5.0, "loss.reduction": "sum"}
    for name, figure in run_figures(frame, evaluations, config, {"h": time_gradients}, "practice", PlotConfig(),
                                    parameters):
        render_figure(figure, Path(name).suffix)


def replot(metrics_csv: Path, output: Optional[Path] = None, parameters: Optional[Sequence[str]] = None,
           steps: Optional[int] = None, log_y: Optional[bool] = None, force: bool = False) -> Path:
    """Draw grad_norms_figure of any metrics.csv again (or time_grads_figure of a time_grads.csv); returns the
    file written.

    Settings not given come from the run folder the CSV sits in: parameters from summary.json's
    plot_parameters, else config.yaml's plot.params, else all; steps and log_y from config.yaml's plot
    section; the clip threshold from its clip section. The default output, REPLOT_NAME (TIME_REPLOT_NAME)
    beside the CSV, is a name no run writes, and no existing file is replaced without `force`.
    """
    if is_time_gradients_csv(metrics_csv):
        given = [name for name, value in (("--params", parameters), ("--steps", steps), ("--log-y", log_y))
                 if value is not None]
        if given:
            raise OptionError(given[0], "applies to a metrics.csv, not to a time_grads.csv")
        return _replot_time_gradients(metrics_csv, output or metrics_csv.parent / TIME_REPLOT_NAME, force)
    output = output if output is not None else metrics_csv.parent / REPLOT_NAME
    figure_format(output)
    folder = metrics_csv.parent
    record = RunFolder.read(folder)
    # The run's own metrics.csv is read once, with its folder; any other CSV (a copy, a renamed one) apart.
    own = metrics_csv.name == METRICS and record.metrics is not None
    frame = record.metrics if own else read_metrics(metrics_csv)
    config = record.config or {}
    wanted = parameters or (record.summary.plot_parameters if record.summary else None) or config.get("plot.params")
    chosen = select_parameters(parameter_names(frame.columns), wanted, str(metrics_csv))
    steps = steps if steps is not None else config.get("plot.steps")
    log_y = log_y if log_y is not None else bool(config.get("plot.log_y", False))
    _refuse_to_replace(output, force)
    plot_grad_norms(frame, output, chosen, steps, log_y, title=folder.name, clip=clip_section(config))
    return output


def _replot_time_gradients(time_csv: Path, output: Path, force: bool) -> Path:
    """time_grads_figure of a time_grads.csv, with the σ_max columns of the metrics.csv beside it when there is one."""
    figure_format(output)
    frame = read_time_gradients(time_csv)
    metrics = time_csv.parent / METRICS
    _refuse_to_replace(output, force)
    # a run's cell_grads.csv (or a copy of it under a name that says so) holds an LSTM's cell states' gradients
    state = "c" if time_csv.name.startswith(CELL_GRADS.removesuffix(".csv")) else "h"
    save_figure(time_grads_figure(frame, read_metrics(metrics) if metrics.is_file() else None, time_csv.parent.name,
                                  state), output)
    return output


def _refuse_to_replace(output: Path, force: bool) -> None:
    if output.exists() and not force:
        raise OutputError(str(output), "exists; pass --force to replace it, or -o to write another file")
