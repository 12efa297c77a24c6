"""Gradient-norm curves: which parameters to draw, their colours, the one function that draws a norm curve
(run, compare and sweep figures alike), and the step where a run diverged."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from gradexp.errors import DataError
from gradexp.plotting.scales import finite_values
from gradexp.recording.layout import CLIPPED, CLIPPED_PREFIX, GRAD_PREFIX, LOSS, STEP, TOTAL, short_parameter_name

# The article's colours for W, U and b (seed 002's plot_grad), then matplotlib's cycle without the two below.
ARTICLE_COLOURS = ["#e4007f", "#f19ec2", "#000000"]
THRESHOLD_COLOUR = "C2"
DIVERGENCE_COLOUR = "C3"
AFTER_CLIPPING = " after clipping"
AFTER_CLIPPING_LABEL = "after clipping (dashed)"


def select_parameters(available: Sequence[str], wanted: Optional[Sequence[str]], source: str) -> list[str]:
    """Match wanted names against full dotted names or their last component (W matches rnn_model.W)."""
    if not wanted:
        return list(available)
    chosen = []
    for name in wanted:
        matches = [p for p in available if p == name or p.split(".")[-1] == name] + ([TOTAL] if name == TOTAL else [])
        if not matches:
            raise DataError(source, f"no parameter {name!r}; expected some of {', '.join(available)}, total")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen


def parameter_colour(index: int) -> str:
    colours = ARTICLE_COLOURS + [f"C{i}" for i in range(10) if f"C{i}" not in (THRESHOLD_COLOUR, DIVERGENCE_COLOUR)]
    return colours[index % len(colours)]


def draw_norm_curve(axes: Axes, frame: pd.DataFrame, column: str, **style: Any) -> pd.Series:
    """One metrics.csv column (a gradient norm, a logged clip threshold; compare's loss panel beside the norms)
    against the step, ±inf drawn as gaps where the run stopped being finite; returns the values drawn, for
    set_log_scale. `style` (color, linestyle, label ...) goes to matplotlib's Axes.plot."""
    values = finite_values(frame, column)
    axes.plot(frame[STEP], values, **style)
    return values


def draw_norm_curves(axes: Axes, frame: pd.DataFrame, parameters: Sequence[str], after_clipping: bool) -> None:
    """Each parameter's gradient L2 norm per step before clipping (solid, labelled by its short name: "W"),
    and with `after_clipping` after it (dashed, same colour: "W after clipping").

    A run longer than LONG_RUN_STEPS has more steps than the panel has points across: its step-to-step
    swings would fill the panel with ink, each curve hiding the ones below. There every step is drawn
    faint, and over it the median of each window of smoothing_window(steps) steps, the labelled curve.
    """
    window = smoothing_window(len(frame))
    for index, name in enumerate(parameters):
        label = short_parameter_name(name, parameters)
        styles = [("-", label, None)] + [("--", label + AFTER_CLIPPING, 0.8)] * (
            after_clipping and CLIPPED_PREFIX + name in frame.columns)
        for (linestyle, curve_label, alpha), prefix in zip(styles, (GRAD_PREFIX, CLIPPED_PREFIX)):
            style = {"color": parameter_colour(index), "linestyle": linestyle}
            if window == 1:
                draw_norm_curve(axes, frame, prefix + name, linewidth=1.1, alpha=alpha, label=curve_label, **style)
                continue
            draw_norm_curve(axes, frame, prefix + name, linewidth=0.3, alpha=0.12, **style)
            median = finite_values(frame, prefix + name).rolling(window, center=True, min_periods=1).median()
            axes.plot(frame[STEP], median, linewidth=1.3, alpha=alpha, label=curve_label, **style)


# Runs longer than this many steps get their norm curves smoothed (draw_norm_curves); E1's 250 steps do not.
LONG_RUN_STEPS = 1000


def smoothing_window(steps: int) -> int:
    """1 (every step drawn as it is) up to LONG_RUN_STEPS steps, else a window of a hundredth of the run."""
    return 1 if steps <= LONG_RUN_STEPS else steps // 100


def clipping_acted(frame: pd.DataFrame) -> bool:
    """Whether the clip changed a gradient at any step (metrics.csv's clipped column)."""
    return CLIPPED in frame.columns and bool(frame[CLIPPED].fillna(0).astype(bool).any())


def divergence_step(frame: pd.DataFrame) -> Optional[int]:
    """The first step whose loss or a gradient norm is not finite (the runner stops a run there: it diverged).

    Read from metrics.csv, not summary.json: a run's figures are drawn before its summary is written. A norm
    column with no finite value at all holds the placeholders of a run that recorded no norms
    (record.norms: false), and says nothing.
    """
    columns = [column for column in frame.columns if column == LOSS or column.startswith(GRAD_PREFIX)]
    if not columns or not len(frame):
        return None
    values = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    recorded = np.array([column == LOSS for column in columns]) | np.isfinite(values).any(axis=0)
    values = values[:, recorded]
    rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    return int(frame[STEP].iloc[rows[0]]) if len(rows) else None


def mark_divergence(axes: Axes, step: int) -> None:
    """A dashed vertical line at the step where the run diverged."""
    axes.axvline(step, color=DIVERGENCE_COLOUR, linestyle="--", linewidth=1.2, label=f"diverged at step {step}")
