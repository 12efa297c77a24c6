"""time_grads.pdf: where along the sequence a recurrent model's gradient grows or dies, step by step, and why.

‖∂L/∂h_t‖ is a product of T − t factors diag(tanh′)·Uᵀ (Pascanu, Mikolov & Bengio 2013), so it grows or
shrinks geometrically with the distance from the loss: the heatmap shows it for every recorded step
(x) and position t (y), the profiles below a few chosen steps on a log axis, and the last panel the
recurrent matrix's largest singular value with the line σ = 1, below which the gradient must vanish.
cell_grads.pdf draws an LSTM's ‖∂L/∂c_t‖ the same way: the cell state's path, the LSTM's remedy.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from gradexp.plotting.heatmaps import draw_log_heatmap
from gradexp.plotting.layout import FIGURE_WIDTH, legend_above, panel_grid, title_on_top, unique_handles
from gradexp.plotting.norms import THRESHOLD_COLOUR, parameter_colour
from gradexp.plotting.scales import set_log_scale
from gradexp.recording.layout import SIGMA_PREFIX, STEP, short_parameter_name

# How many steps' profiles the middle panel draws at most.
PROFILES = 5
# The states whose gradients a figure shows: their symbol and what they are.
STATES = {"h": "hidden state", "c": "cell state"}


def time_grads_figure(time_gradients: pd.DataFrame, metrics: Optional[pd.DataFrame], title: str = "",
                      state: str = "h") -> Figure:
    """The heatmap of log10 ‖∂L/∂h_t‖ (`state` c: ‖∂L/∂c_t‖) over steps and positions, chosen steps' profiles
    against t, and σ_max of each recurrent matrix per step (when metrics.csv has sigma_max columns) with σ = 1
    marked."""
    sigma_columns = [c for c in metrics.columns if c.startswith(SIGMA_PREFIX)] if metrics is not None else []
    count = 3 if sigma_columns else 2
    figure, panels = panel_grid(count, 1, FIGURE_WIDTH, top=0.75, row_gap=1.15, bottom=0.55, left=0.8, right=1.1,
                                panel_height=2.6)
    title_on_top(figure, title)
    steps = time_gradients[STEP].to_numpy()
    norms = time_gradients.drop(columns=STEP).to_numpy(dtype=float)  # (recorded steps, T)
    _draw_heatmap(figure, panels[0], steps, norms, state)
    _draw_profiles(panels[1], steps, norms, state)
    if sigma_columns:
        _draw_sigma(panels[2], metrics, sigma_columns)
        # a step sits above its heatmap column
        panels[2].set_xlim(panels[0].get_xlim())
    return figure


def _draw_heatmap(figure: Figure, axes, steps: np.ndarray, norms: np.ndarray, state: str) -> None:
    length = norms.shape[1]
    draw_log_heatmap(figure, axes, steps, norms.T, (0.5, length + 0.5), f"log10 ‖∂L/∂{state}_t‖")
    axes.set_xlabel("step")
    axes.set_ylabel(f"position t (loss at t = {length})")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(f"log10 ‖∂L/∂{state}_t‖, the gradient reaching each {STATES[state]} (grey: exactly 0, "
                   f"saturated)", fontsize="small", y=1.0)


def chosen_steps(steps: np.ndarray, norms: np.ndarray) -> list[int]:
    """Row indices of the steps whose profiles are drawn: the first, the one whose gradient reached the first
    position strongest (the explosion), the last finite one, and evenly spaced ones between; at most PROFILES."""
    finite = np.flatnonzero(np.isfinite(norms).all(axis=1))
    if not len(finite):
        return []
    first_position = np.where(np.isfinite(norms[:, 0]), norms[:, 0], -np.inf)
    picked = {int(finite[0]), int(finite[-1]), int(np.argmax(first_position))}
    for index in np.linspace(finite[0], finite[-1], PROFILES)[1:-1].round().astype(int):
        if len(picked) >= PROFILES:
            break
        picked.add(int(index))
    return sorted(picked)


def _draw_profiles(axes, steps: np.ndarray, norms: np.ndarray, state: str) -> None:
    positions = np.arange(1, norms.shape[1] + 1)
    drawn = []
    chosen = chosen_steps(steps, norms)
    zero = False
    for colour, index in enumerate(chosen):
        zero = zero or bool((norms[index] == 0).any())
        values = np.where(norms[index] > 0, norms[index], np.nan)
        # matplotlib's own cycle: five clearly different colours (the article's W, U pinks are close)
        axes.plot(positions, values, "o-", markersize=3, linewidth=1.1, color=f"C{colour}",
                  label=f"step {steps[index]}")
        drawn.append(values)
    axes.set_xlabel("position t")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(f"‖∂L/∂{state}_t‖")
    limits = set_log_scale(axes, drawn) if drawn else None
    notes = [limits.note() if limits else "", "gradients of exactly 0 left out" if zero else ""]
    notes = "; ".join(note for note in notes if note)
    axes.set_title("steps: the first, the strongest at t = 1, the last, some between" + (f"\n({notes})" if notes else ""),
                   fontsize="small", y=1.0, pad=18)
    legend_above(axes, unique_handles([axes]))


def _draw_sigma(axes, metrics: pd.DataFrame, sigma_columns: list[str]) -> None:
    names = [column[len(SIGMA_PREFIX):] for column in sigma_columns]
    for index, (column, name) in enumerate(zip(sigma_columns, names)):
        axes.plot(metrics[STEP], metrics[column], linewidth=1.1, color=parameter_colour(index),
                  label=f"σ_max({short_parameter_name(name, names)})")
    axes.axhline(1.0, color=THRESHOLD_COLOUR, linestyle=":", linewidth=1.2, label="σ = 1")
    axes.set_xlabel("step")
    axes.set_ylabel("largest singular value")
    values = metrics[sigma_columns].to_numpy(dtype=float)
    if np.isfinite(values).any() and np.nanmax(values) / max(np.nanmin(values), 1e-300) > 100:
        set_log_scale(axes, [values.ravel(), np.array([1.0])])
    legend_above(axes, unique_handles([axes]))
