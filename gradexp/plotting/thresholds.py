"""The clip threshold on a gradient-norm figure: what each clip mode's threshold bounds, in one table.

plotting reads a run's config.yaml, not clip objects, and does not import gradexp.clipping; so
CLIP_MODE_MARKS is the one place in plotting that knows, for each mode gradexp/clipping registers, which
norm the figure draws its threshold against, and how the title and legend name it. A new clip mode is
one row here (a test checks the rows against the registry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, Optional

import pandas as pd
from matplotlib.axes import Axes

from gradexp.plotting.norms import THRESHOLD_COLOUR, draw_norm_curve
from gradexp.recording.layout import CLIP_THRESHOLD


class Bound(Enum):
    """Which drawn norm a clip mode's threshold bounds, and so how the figure shows it."""

    # No line: the mode bounds no norm the figure draws (value clamps elements, AGC bounds a ratio to the
    # weights' norm), or it does not clip.
    NO_DRAWN_NORM = "no drawn norm"
    # config.yaml's clip.threshold, a horizontal line over every parameter's own curve.
    EACH_TENSOR = "each tensor"
    # config.yaml's clip.threshold, a horizontal line; the total norm is drawn too.
    TOTAL = "total"
    # metrics.csv's clip_threshold column, a line through each step's value; the total norm is drawn too.
    TOTAL_PER_STEP = "total per step"


@dataclass(frozen=True)
class ModeMark:
    """One clip mode's row of CLIP_MODE_MARKS.

    note (the figure's subtitle) and label (the threshold line's legend entry; None without a line) are
    str.format templates over: threshold (clip.threshold), norm (clip.norm_type as L2, L1, L∞), curves
    ("; curves are L2" when that norm is another: the curves are always L2 norms) and percentile
    (" (10)" from clip.percentile, or ""). uses_threshold: clip.threshold is the mode's bound, so without a
    finite one the subtitle only names the mode.
    """

    bound: Bound
    note: str
    label: Optional[str] = None
    uses_threshold: bool = False


# The rules are gradexp/clipping's: `norm` scales each tensor to p-norm <= c, `global_norm` all gradients
# together to a total p-norm <= c; AutoClip and ZClip bound the total L2 norm by a threshold they log per
# step; `value` clamps each element to [-c, c] and AGC each unit's norm to c times its weights' norm.
CLIP_MODE_MARKS: dict[str, ModeMark] = {
    "none": ModeMark(Bound.NO_DRAWN_NORM, "no clipping"),
    "norm": ModeMark(Bound.EACH_TENSOR, "clip: each tensor's {norm} norm to {threshold:g}",
                     "clip threshold {threshold:g} (each tensor's {norm} norm{curves})", uses_threshold=True),
    "global_norm": ModeMark(Bound.TOTAL, "clip: the {norm} norm of all gradients together to {threshold:g}",
                            "clip threshold {threshold:g} (total {norm} norm{curves})", uses_threshold=True),
    "value": ModeMark(Bound.NO_DRAWN_NORM, "clip: each element to ±{threshold:g}", uses_threshold=True),
    "agc": ModeMark(Bound.NO_DRAWN_NORM, "clip: AGC, each unit's norm to {threshold:g} × its weights' norm",
                    uses_threshold=True),
    "autoclip": ModeMark(Bound.TOTAL_PER_STEP,
                         "clip: AutoClip, the total norm to a percentile of the norms so far{percentile}",
                         "AutoClip threshold per step (total L2 norm)"),
    "zclip": ModeMark(Bound.TOTAL_PER_STEP, "clip: ZClip, spikes of the total norm by z-score",
                      "ZClip threshold per step (total L2 norm)"),
}
THRESHOLD_STYLE = {"color": THRESHOLD_COLOUR, "linestyle": ":", "linewidth": 1.5}


@dataclass(frozen=True)
class ClipMark:
    """How a run's clip mode shows on its gradient-norm figure.

    note: what clips what, for the title. label: the threshold line's legend entry, or None for no line.
    threshold: a fixed line's value. per_step: the line is metrics.csv's logged clip_threshold instead.
    on_total: the threshold bounds the norm of all gradients together, so the figure draws the total too.
    """

    note: str = ""
    label: Optional[str] = None
    threshold: Optional[float] = None
    per_step: bool = False
    on_total: bool = False


def clip_mark(clip: Optional[Mapping[str, Any]]) -> ClipMark:
    """The ClipMark of a config's `clip` section (as config.yaml writes it), by its mode's row of CLIP_MODE_MARKS;
    an empty one without a mode, and only the mode's name for a mode with no row or without its threshold."""
    if not clip or not clip.get("mode"):
        return ClipMark()
    mode = str(clip["mode"])
    row = CLIP_MODE_MARKS.get(mode)
    threshold = _number(clip.get("threshold"))
    if row is None or (row.uses_threshold and threshold is None):
        return ClipMark(note=f"clip: {mode}")
    norm = _norm_name(clip.get("norm_type", 2))
    percentile = _number(clip.get("percentile"))
    fields = {"threshold": threshold, "norm": norm, "curves": "" if norm == "L2" else "; curves are L2",
              "percentile": f" ({percentile:g})" if percentile is not None else ""}
    return ClipMark(note=row.note.format(**fields),
                    label=row.label.format(**fields) if row.label is not None else None,
                    threshold=threshold if row.bound in (Bound.EACH_TENSOR, Bound.TOTAL) else None,
                    per_step=row.bound is Bound.TOTAL_PER_STEP,
                    on_total=row.bound in (Bound.TOTAL, Bound.TOTAL_PER_STEP))


def clip_section(flat_config: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    """The `clip` section of a config flattened to dotted keys (clip.mode ...), or None without one."""
    if flat_config is None:
        return None
    return {key[len("clip."):]: value for key, value in flat_config.items() if key.startswith("clip.")} or None


def draw_clip_threshold(axes: Axes, frame: pd.DataFrame, mark: ClipMark) -> None:
    """The threshold as a dotted line: horizontal for a fixed mode, the logged value per step for an adaptive one."""
    if mark.label is None:
        return
    if not mark.per_step:
        axes.axhline(mark.threshold, **THRESHOLD_STYLE, label=mark.label)
    elif CLIP_THRESHOLD in frame.columns and frame[CLIP_THRESHOLD].notna().any():
        draw_norm_curve(axes, frame, CLIP_THRESHOLD, **THRESHOLD_STYLE, label=mark.label)


def _number(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _norm_name(norm_type: Any) -> str:
    try:
        p = float(norm_type)
    except (TypeError, ValueError):
        return f"L{norm_type}"
    return "L∞" if math.isinf(p) else f"L{p:g}"
