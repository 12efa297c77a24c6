"""PDF plots of a run, drawn from its CSV files (never from training state), for `run` and `plot` alike."""

from __future__ import annotations

import io
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from gradexp.config.schema import PlotConfig  # noqa: E402
from gradexp.errors import DataError  # noqa: E402
from gradexp.recording import write_bytes  # noqa: E402

# The article's colours for W, U and b (seed 002's plot_grad), then matplotlib's cycle.
ARTICLE_COLOURS = ["#e4007f", "#f19ec2", "#000000"]
GRAD_PREFIX = "grad_norm/"
CLIPPED_PREFIX = "clipped_norm/"


def read_metrics(path: str | Path) -> pd.DataFrame:
    """Load a metrics.csv, with a one-line DataError when it is missing or not one."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(str(path), "no such file") from None
    except IsADirectoryError:
        raise DataError(str(path), "is a folder; expected a metrics.csv file") from None
    except pd.errors.EmptyDataError:
        raise DataError(str(path), "is empty; expected a metrics.csv written by gradexp run") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as failure:
        raise DataError(str(path), f"cannot be read as CSV ({str(failure).splitlines()[0]})") from None
    if "step" not in frame.columns or not parameter_columns(frame):
        raise DataError(str(path), "is not a gradexp metrics.csv (expected a 'step' column and grad_norm/<param> columns)")
    malformed = [c for c in ["step", *(GRAD_PREFIX + p for p in parameter_columns(frame))]
                 if not pd.api.types.is_numeric_dtype(frame[c])]
    if malformed:
        raise DataError(str(path), f"column {malformed[0]!r} holds values that are not numbers")
    return frame


def parameter_columns(frame: pd.DataFrame) -> list[str]:
    """Parameter names with a grad_norm column, in file order, without the total."""
    return [c[len(GRAD_PREFIX):] for c in frame.columns if c.startswith(GRAD_PREFIX) and c != GRAD_PREFIX + "total"]


def select_parameters(available: Sequence[str], wanted: Optional[Sequence[str]], source: str) -> list[str]:
    """Match wanted names against full dotted names or their last component (W matches rnn_model.W)."""
    if not wanted:
        return list(available)
    chosen = []
    for name in wanted:
        matches = [p for p in available if p == name or p.split(".")[-1] == name] + (["total"] if name == "total" else [])
        if not matches:
            raise DataError(source, f"no parameter {name!r}; expected some of {', '.join(available)}, total")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def short_parameter_name(name: str, names: Sequence[str]) -> str:
    """The last dotted component (W for rnn_model.W) when no other name in `names` shares it, else the full name."""
    last = name.split(".")[-1]
    return last if sum(n.split(".")[-1] == last for n in names) == 1 else name


def save_figure(figure: plt.Figure, path: Path) -> None:
    """Write `figure` as a PDF without timestamps (same figure => same bytes), atomically, and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="pdf", metadata={"CreationDate": None, "ModDate": None})
    plt.close(figure)
    write_bytes(path, buffer.getvalue())


def plot_grad_norms(frame: pd.DataFrame, out: Path, parameters: Sequence[str], steps: Optional[int] = None,
                    log_y: bool = False, title: str = "") -> None:
    """Gradient L2 norm of each parameter against the step, before clipping (solid) and after it (dashed)."""
    if steps is not None:
        frame = frame[frame["step"] <= steps]
    figure, axes = plt.subplots(figsize=(7, 4.2))
    clipping_acted = "clipped" in frame.columns and frame["clipped"].fillna(0).astype(bool).any()
    colours = ARTICLE_COLOURS + [f"C{i}" for i in range(10)]
    for index, name in enumerate(parameters):
        colour = colours[index % len(colours)]
        label = short_parameter_name(name, parameters)
        values = frame[GRAD_PREFIX + name].replace([np.inf, -np.inf], np.nan)
        axes.plot(frame["step"], values, "-", color=colour, label=f"{label}_grad_l2")
        if clipping_acted and CLIPPED_PREFIX + name in frame.columns:
            clipped = frame[CLIPPED_PREFIX + name].replace([np.inf, -np.inf], np.nan)
            axes.plot(frame["step"], clipped, "--", color=colour, alpha=0.8, label=f"{label} after clipping")
    axes.set_xlabel("step")
    axes.set_ylabel("L2 norm")
    if log_y:
        axes.set_yscale("log")
    if title:
        axes.set_title(title)
    axes.legend(loc="upper right", fontsize="small")
    # Fixed margins, not tight_layout: measuring every label's extent took half of a run's drawing time,
    # which a 64-point sweep pays 128 times.
    figure.subplots_adjust(left=0.11, right=0.97, bottom=0.12, top=0.92)
    save_figure(figure, out)


def plot_losses(frame: pd.DataFrame, evaluations: Optional[pd.DataFrame], out: Path, metric: Optional[str],
                title: str = "") -> None:
    """Training loss per step and per epoch (mean), and the dev/test loss and metric at each evaluation."""
    panels = 2 if evaluations is not None and len(evaluations) else 1
    figure, axes = plt.subplots(panels, 1, figsize=(7, 3.4 * panels), squeeze=False)
    training = axes[0][0]
    loss = frame["loss"].replace([np.inf, -np.inf], np.nan)
    training.plot(frame["step"], loss, color="C0", alpha=0.35, linewidth=0.8, label="train loss (step)")
    per_epoch = frame.assign(loss=loss).groupby("epoch").agg(step=("step", "max"), loss=("loss", "mean"))
    training.plot(per_epoch["step"], per_epoch["loss"], "o-", color="C0", markersize=3, label="train loss (epoch mean)")
    training.set_xlabel("step")
    training.set_ylabel("loss")
    training.legend(fontsize="small")
    if title:
        training.set_title(title)
    if panels == 2:
        held_out = axes[1][0]
        for split, colour in (("dev", "C1"), ("test", "C2")):
            rows = evaluations[evaluations["split"] == split]
            if len(rows):
                held_out.plot(rows["step"], rows["loss"], "o-", color=colour, markersize=3, label=f"{split} loss")
        held_out.set_xlabel("step")
        held_out.set_ylabel("loss (mean per example)")
        dev = evaluations[evaluations["split"] == "dev"]
        # A metric that is the loss itself (mse for an MSE regression) would only retrace the dev loss line.
        if metric and metric in evaluations.columns and not np.allclose(dev[metric], dev["loss"], equal_nan=True):
            other = held_out.twinx()
            other.plot(dev["step"], dev[metric], "s--", color="C3", markersize=3, label=f"dev {metric}")
            other.set_ylabel(metric)
            other.legend(loc="center right", fontsize="small")
        held_out.legend(loc="upper right", fontsize="small")
    # Fixed margins for the same reason as plot_grad_norms; room on the right for the metric's own axis.
    figure.subplots_adjust(left=0.12, right=0.88, bottom=0.14 / panels, top=1 - 0.08 / panels, hspace=0.3)
    save_figure(figure, out)


def plot_run(run_dir: Path, plot: PlotConfig, parameters: Sequence[str]) -> None:
    """grad_norms.pdf and loss.pdf of a run folder."""
    frame = read_metrics(run_dir / "metrics.csv")
    if not len(frame):
        return
    evaluation_path = run_dir / "eval.csv"
    evaluations = pd.read_csv(evaluation_path) if evaluation_path.exists() else None
    metric = evaluations.columns[-1] if evaluations is not None else None
    chosen = select_parameters(parameter_columns(frame), parameters, str(run_dir / "metrics.csv"))
    plot_grad_norms(frame, run_dir / "grad_norms.pdf", chosen, plot.steps, plot.log_y, title=run_dir.name)
    plot_losses(frame, evaluations, run_dir / "loss.pdf", metric, title=run_dir.name)


def plot_runs(runs: Sequence[tuple[Path, PlotConfig, Sequence[str]]], processes: int) -> None:
    """plot_run for each (run folder, plot settings, parameters), drawn in up to `processes` processes at once.

    A figure is matplotlib's Python work on one core, and the runs of a vectorized sweep's batch finish
    together, so their plots are drawn side by side. Workers are forked where that is safe (Linux): they
    start at once, with everything already imported, and use no torch. The first error is raised here.
    """
    if processes < 2 or len(runs) < 2:
        for run in runs:
            plot_run(*run)
        return
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(min(processes, len(runs)), mp_context=context) as pool:
        for _ in pool.map(plot_run, *zip(*runs)):
            pass
