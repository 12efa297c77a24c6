"""loss.pdf: the training loss per step and per epoch; below it, the held-out loss and metric per evaluation."""

from __future__ import annotations

from typing import Optional, Sequence

from matplotlib.figure import Figure
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from numpy.typing import ArrayLike

from gradexp.plotting.layout import legend_above, stacked_panels, title_on_top, unique_handles
from gradexp.plotting.norms import divergence_step, mark_divergence
from gradexp.plotting.scales import BOUNDED_METRICS, finite_values, metric_scale, set_log_scale
from gradexp.recording.layout import EPOCH, LOSS, SPLIT, STEP

# A loss whose finite positive values span more decades than this is drawn on a log axis.
LOSS_LOG_DECADES = 3


def loss_figure(frame: pd.DataFrame, evaluations: Optional[pd.DataFrame], metric: Optional[str],
                title: str = "", reduction: Optional[str] = None) -> Figure:
    """Training loss per step and per epoch (mean); below, the dev/test loss and the dev metric at each evaluation.

    The held-out panel is left out when no evaluation has a finite value (a run that diverged before its
    first dev evaluation has only a NaN test row). A loss spanning more than LOSS_LOG_DECADES decades (a run
    on its way to diverging) goes on a log axis. Each panel's legend sits above it, outside the curves; a
    diverged run gets a dashed line at the first step that was not finite. `reduction` (the config's
    loss.reduction) says how the training loss is taken over a batch: E1's sum is the batch size times the
    mean per example that the held-out panel shows, so the axis says which it is.
    """
    held_out_rows = _finite_evaluations(evaluations, metric)
    figure, panels = stacked_panels(2 if len(held_out_rows) else 1, top=0.75, gap=0.85, bottom=0.5, right=0.75,
                                    panel_height=2.6)
    title_on_top(figure, title)
    diverged_at = divergence_step(frame)
    training = panels[0]
    loss = finite_values(frame, LOSS)
    training.plot(frame[STEP], loss, color="C0", alpha=0.35, linewidth=0.8, label="train loss (step)")
    per_epoch = frame.assign(loss=loss).groupby(EPOCH).agg(step=(STEP, "max"), loss=(LOSS, "mean"))
    training.plot(per_epoch[STEP], per_epoch[LOSS], "o-", color="C0", markersize=3, label="train loss (epoch mean)")
    if diverged_at is not None:
        mark_divergence(training, diverged_at)
    training.set_xlabel("step")
    training.set_ylabel(f"training loss ({reduction} over the batch)" if reduction else "training loss")
    _log_scale_if_wide(training, [loss])
    legend_above(training, unique_handles([training]))
    if len(panels) == 2:
        _draw_held_out(panels[1], held_out_rows, metric)
        panels[1].set_xlim(training.get_xlim())  # steps line up with the training panel's
    return figure


def _finite_evaluations(evaluations: Optional[pd.DataFrame], metric: Optional[str]) -> pd.DataFrame:
    """The evaluation rows with a finite loss or metric (none of a run that diverged before evaluating)."""
    if evaluations is None or not len(evaluations) or LOSS not in evaluations.columns:
        return pd.DataFrame(columns=[STEP, SPLIT, LOSS])
    columns = [LOSS] + ([metric] if metric and metric in evaluations.columns else [])
    values = evaluations[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return evaluations[np.isfinite(values).any(axis=1)]


def _draw_held_out(axes: Axes, evaluations: pd.DataFrame, metric: Optional[str]) -> None:
    for split, colour in (("dev", "C1"), ("test", "C2")):
        rows = evaluations[evaluations[SPLIT] == split]
        if len(rows):
            axes.plot(rows[STEP], finite_values(rows, LOSS), "o-", color=colour, markersize=3, label=f"{split} loss")
    axes.set_xlabel("step")
    axes.set_ylabel("loss (mean per example)")
    _log_scale_if_wide(axes, [evaluations[LOSS]])
    panels = [axes]
    dev = evaluations[evaluations[SPLIT] == "dev"]
    # A metric that is the loss itself (mse for an MSE regression) would only retrace the dev loss line.
    if (metric and metric in dev.columns and len(dev) and dev[metric].notna().any()
            and not np.allclose(dev[metric], dev[LOSS], equal_nan=True)):
        other = axes.twinx()
        other.plot(dev[STEP], finite_values(dev, metric), "s--", color="C3", markersize=3, label=f"dev {metric}")
        other.set_ylabel(metric)
        # An accuracy on its whole 0-1 range: a step from 0.125 to 0.13 is noise, not a jump across the panel.
        scale = metric_scale(finite_values(dev, metric), metric in BOUNDED_METRICS)
        if scale.log:
            other.set_yscale("log")
        other.set_ylim(scale.low, scale.high)
        panels.append(other)
    legend_above(axes, unique_handles(panels))


def _log_scale_if_wide(axes: Axes, values: Sequence[ArrayLike]) -> None:
    """A log axis when every finite value is positive and they span more than LOSS_LOG_DECADES decades."""
    pooled = np.concatenate([np.asarray(array, dtype=float).ravel() for array in values])
    finite = pooled[np.isfinite(pooled)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 10**LOSS_LOG_DECADES:
        set_log_scale(axes, [finite])
