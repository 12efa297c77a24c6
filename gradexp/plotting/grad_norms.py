"""grad_norms.pdf: each parameter's gradient norm per step, before and after clipping, with the clip
threshold and the divergence step; the article's first steps on top, the whole run on a log axis below."""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

from matplotlib.figure import Figure
import pandas as pd
from matplotlib.lines import Line2D

from gradexp.plotting.layout import FIGURE_WIDTH, legend_rows, stacked_panels, unique_handles
from gradexp.plotting.norms import (AFTER_CLIPPING, AFTER_CLIPPING_LABEL, clipping_acted, divergence_step,
                                    draw_norm_curves, mark_divergence, smoothing_window)
from gradexp.plotting.scales import set_log_scale
from gradexp.plotting.thresholds import ClipMark, clip_mark, draw_clip_threshold
from gradexp.recording.layout import CLIP_THRESHOLD, CLIPPED_PREFIX, GRAD_PREFIX, STEP, TOTAL, short_parameter_name


def grad_norms_figure(frame: pd.DataFrame, parameters: Sequence[str], steps: Optional[int] = None,
                      log_y: bool = False, title: str = "", clip: Optional[Mapping[str, Any]] = None) -> Figure:
    """Gradient L2 norm of each parameter against the step: before clipping (solid, "W") and after it
    (dashed, "W after clipping"), the latter only when clipping acted.

    Top: the article's view, the first `steps` steps (every step with None) on a linear axis (log with
    `log_y`). Below: the whole run on a log axis whose lower end log_axis_floor sets, so the collapse after
    an explosion shows; left out when the top panel is that already. Both panels carry the clip threshold
    (clip_mark: a horizontal line for a fixed mode, the logged per-step value for an adaptive one; the
    total norm is drawn too when the threshold bounds it) and, for a diverged run, a dashed line at the
    first step that was not finite. One legend under the panels names each curve once.
    """
    mark = clip_mark(clip)
    shown = list(parameters) + ([TOTAL] if mark.on_total and TOTAL not in parameters else [])
    first = frame[frame[STEP] <= steps] if steps is not None else frame
    whole_run_panel = not (log_y and len(first) == len(frame))
    after_clipping = clipping_acted(frame)
    diverged_at = divergence_step(frame)

    labels = [short_parameter_name(name, shown) for name in shown] + [AFTER_CLIPPING_LABEL] * after_clipping
    labels += [label for label, present in ((mark.label, mark.label is not None),
                                            (f"diverged at step {diverged_at}", diverged_at is not None)) if present]
    rows = legend_rows(labels, FIGURE_WIDTH - 0.4)
    # Under the panels: the x label (0.5 inch), then the legend, a fifth of an inch per row.
    legend_top = 0.2 * rows + 0.12
    figure, panels = stacked_panels(2 if whole_run_panel else 1, top=0.8, gap=0.8, bottom=legend_top + 0.5)
    height = figure.get_figheight()
    figure.text(0.5, 1 - 0.08 / height, title, fontsize="medium", ha="center", va="top")
    figure.text(0.5, 1 - 0.32 / height, mark.note, fontsize="small", ha="center", va="top")
    views = [(panels[0], first, log_y)] + ([(panels[1], frame, True)] if whole_run_panel else [])
    for axes, view, log_axis in views:
        draw_norm_curves(axes, view, shown, after_clipping)
        draw_clip_threshold(axes, view, mark)
        if diverged_at is not None and diverged_at <= view[STEP].max():
            mark_divergence(axes, diverged_at)
        axes.set_xlabel("step")
        axes.set_ylabel("gradient L2 norm")
        limits = set_log_scale(axes, _drawn_values(view, shown, after_clipping, mark)) if log_axis else None
        extent = f"first {steps} steps" if len(view) < len(frame) else f"whole run ({len(frame)} steps)"
        scale = "log scale" if log_axis else "linear scale"
        window = smoothing_window(len(view))
        smoothed = f"lines: median of every {window} steps" if window > 1 else ""
        # y given: matplotlib then does not measure every tick label to place the title (a third of the drawing)
        axes.set_title(", ".join(part for part in (extent, scale, smoothed, limits.note() if limits else "") if part),
                       fontsize="small", y=1.0)
    # One entry for the dashes, not one per parameter: colour names the parameter, dashes the clipping.
    handles = unique_handles(panels)
    curves = [label for label in handles if label in labels[:len(shown)]]
    marks = {label: handles[label] for label in handles if label not in curves and not label.endswith(AFTER_CLIPPING)}
    handles = {label: handles[label] for label in curves}
    if after_clipping:
        handles[AFTER_CLIPPING_LABEL] = Line2D([], [], color="0.3", linestyle="--", linewidth=1.1)
    handles.update(marks)
    figure.legend(handles.values(), handles.keys(), loc="upper center", ncols=math.ceil(len(handles) / rows),
                  fontsize="small", frameon=False,
                  bbox_to_anchor=(0.5, legend_top / figure.get_figheight()))
    return figure


def _drawn_values(frame: pd.DataFrame, parameters: Sequence[str], after_clipping: bool,
                  mark: ClipMark) -> list[pd.Series]:
    """Every series drawn on a norm panel, for its log floor (the per-step threshold included)."""
    columns = [GRAD_PREFIX + name for name in parameters]
    if after_clipping:
        columns += [CLIPPED_PREFIX + name for name in parameters if CLIPPED_PREFIX + name in frame.columns]
    if mark.per_step and CLIP_THRESHOLD in frame.columns:
        columns.append(CLIP_THRESHOLD)
    return [frame[column] for column in columns] + ([pd.Series([mark.threshold])] if mark.threshold else [])

