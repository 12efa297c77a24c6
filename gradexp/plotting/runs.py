"""A run folder's figures, grad_norms.pdf and loss.pdf (for `run` and `sweep`), and `gradexp plot`'s re-plot
of any metrics.csv; each written by save_figure, looked up here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import pandas as pd

from gradexp.config.schema import PlotConfig
from gradexp.errors import DataError, OptionError, OutputError
from gradexp.plotting.grad_flow import grad_flow_figure
from gradexp.plotting.grad_norms import grad_norms_figure
from gradexp.plotting.loss import loss_figure
from gradexp.plotting.norms import select_parameters
from gradexp.plotting.output import figure_format, save_figure
from gradexp.plotting.thresholds import clip_section
from gradexp.plotting.time_grads import time_grads_figure
from gradexp.recording.folder import RunFolder, is_time_gradients_csv, read_metrics, read_time_gradients
from gradexp.recording.layout import (CELL_GRADS, CELL_GRADS_PLOT, DEPTH_RATIO, GRAD_FLOW_PLOT, GRAD_NORMS_PLOT,
                                      LOSS_PLOT, METRICS, TIME_GRADS, TIME_GRADS_PLOT, parameter_names)

# The default output of `gradexp plot`: a name no run writes, so a re-plot never replaces the run's own figure.
REPLOT_NAME = "grad_norms-replot.pdf"
TIME_REPLOT_NAME = "time_grads-replot.pdf"


def plot_grad_norms(frame: pd.DataFrame, out: Path, parameters: Sequence[str], steps: Optional[int] = None,
                    log_y: bool = False, title: str = "", clip: Optional[Mapping[str, Any]] = None) -> None:
    """grad_norms_figure written to `out` (its suffix picks the format)."""
    save_figure(grad_norms_figure(frame, parameters, steps, log_y, title, clip), out)


def plot_losses(frame: pd.DataFrame, evaluations: Optional[pd.DataFrame], out: Path, metric: Optional[str],
                title: str = "", reduction: Optional[str] = None) -> None:
    """loss_figure written to `out` (its suffix picks the format)."""
    save_figure(loss_figure(frame, evaluations, metric, title, reduction), out)


def plot_run(run_dir: Path, plot: PlotConfig, parameters: Sequence[str]) -> None:
    """grad_norms.pdf and loss.pdf of a run folder, from its metrics.csv, eval.csv and config.yaml (clip mode);
    time_grads.pdf from its time_grads.csv (a recurrent model's run); grad_flow.pdf of the plotted parameters
    (by default each layer's weight) for a feed-forward stack's run (metrics.csv has depth_ratio)."""
    record = RunFolder.read(run_dir)
    if record.metrics is None:
        raise DataError(str(run_dir / METRICS), "no such file")
    frame = record.metrics
    if not len(frame):
        return
    evaluations = record.evaluations()
    metric = evaluations.columns[-1] if evaluations is not None else None  # eval.csv's last column
    chosen = select_parameters(parameter_names(frame.columns), parameters, str(run_dir / METRICS))
    plot_grad_norms(frame, run_dir / GRAD_NORMS_PLOT, chosen, plot.steps, plot.log_y, title=run_dir.name,
                    clip=clip_section(record.config))
    plot_losses(frame, evaluations, run_dir / LOSS_PLOT, metric, title=run_dir.name,
                reduction=(record.config or {}).get("loss.reduction"))
    for csv_name, plot_name, state in ((TIME_GRADS, TIME_GRADS_PLOT, "h"), (CELL_GRADS, CELL_GRADS_PLOT, "c")):
        if (run_dir / csv_name).is_file():
            save_figure(time_grads_figure(read_time_gradients(run_dir / csv_name), frame, run_dir.name, state),
                        run_dir / plot_name)
    if DEPTH_RATIO in frame.columns:
        save_figure(grad_flow_figure(frame, chosen, run_dir.name), run_dir / GRAD_FLOW_PLOT)


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
