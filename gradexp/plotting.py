"""Figures of a run, drawn from its files (never from training state), for `run`, `plot`, `compare` and `sweep`.

A run folder gets grad_norms.pdf (the article's view of the first steps, and the whole run on a log
axis, with the clip threshold and the divergence step) and loss.pdf. What every figure shares lives
here: the log-axis floor rule, the norm curves, the threshold line, the divergence marker, and
save_figure, which picks the file format from the suffix and writes the same bytes for the same figure.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm, Normalize  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullLocator  # noqa: E402
from numpy.typing import ArrayLike  # noqa: E402

from gradexp.config.schema import PlotConfig  # noqa: E402
from gradexp.errors import DataError, OutputError  # noqa: E402
from gradexp.recording.files import write_bytes  # noqa: E402
from gradexp.recording.folder import RunFolder  # noqa: E402

# The article's colours for W, U and b (seed 002's plot_grad), then matplotlib's cycle.
ARTICLE_COLOURS = ["#e4007f", "#f19ec2", "#000000"]
GRAD_PREFIX = "grad_norm/"
CLIPPED_PREFIX = "clipped_norm/"
TOTAL = "total"
CLIP_THRESHOLD_COLUMN = "clip_threshold"
THRESHOLD_COLOUR = "C2"
AFTER_CLIPPING = " after clipping"
AFTER_CLIPPING_LABEL = "after clipping (dashed)"
DIVERGENCE_COLOUR = "C3"

# The default output of `gradexp plot`: a name no run writes, so a re-plot never replaces the run's own figure.
REPLOT_NAME = "grad_norms-replot.pdf"

# File formats save_figure writes, by suffix, and how: no creation dates (PDF, SVG) and a fixed salt for
# SVG's element ids (random by default), so the same figure always gives the same bytes.
FIGURE_FORMATS: dict[str, dict[str, Any]] = {
    ".pdf": {"format": "pdf", "metadata": {"CreationDate": None, "ModDate": None}},
    ".png": {"format": "png", "dpi": 200},
    ".svg": {"format": "svg", "metadata": {"Date": None}},
}
SVG_ID_SALT = "gradexp"

# The log-axis floor (log_axis_floor): this many decades below this percentile of the values.
FLOOR_PERCENTILE = 5
FLOOR_DECADES = 3
# A log axis spanning more decades than this gets no minor ticks.
LOG_MINOR_TICKS_DECADES = 2
# A loss whose finite positive values span more decades than this is drawn on a log axis.
LOSS_LOG_DECADES = 3

# Fixed layout, in inches: no tight_layout or constrained layout, which measure every label's extent and
# took half of a run's drawing time, paid twice per run by a 64-point sweep.
FIGURE_WIDTH = 7.0
PANEL_HEIGHT = 2.9
LEGEND_FONT_POINTS = 8.33  # matplotlib's "small" at the default 10-point font


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
    return [c[len(GRAD_PREFIX):] for c in frame.columns if c.startswith(GRAD_PREFIX) and c != GRAD_PREFIX + TOTAL]


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


def short_parameter_name(name: str, names: Sequence[str]) -> str:
    """The last dotted component (W for rnn_model.W) when no other name in `names` shares it, else the full name."""
    last = name.split(".")[-1]
    return last if sum(n.split(".")[-1] == last for n in names) == 1 else name


# Writing ---------------------------------------------------------------------------------------------------

def figure_format(path: Path) -> str:
    """The format `path`'s suffix names (pdf, png, svg); an OutputError for any other suffix."""
    options = FIGURE_FORMATS.get(path.suffix.lower())
    if options is None:
        given = f"unknown figure format {path.suffix!r}" if path.suffix else "no suffix to name the figure format"
        *others, last = FIGURE_FORMATS
        raise OutputError(str(path), f"{given}; expected {', '.join(others)} or {last}")
    return options["format"]


def save_figure(figure: plt.Figure, path: Path) -> None:
    """Write `figure` in the format its suffix names, without timestamps (same figure => same bytes), atomically,
    and close it (also when the suffix is refused)."""
    buffer = io.BytesIO()
    try:
        figure_format(path)
        with matplotlib.rc_context({"svg.hashsalt": SVG_ID_SALT}):
            figure.savefig(buffer, **FIGURE_FORMATS[path.suffix.lower()])
    finally:
        plt.close(figure)
    write_bytes(path, buffer.getvalue())


# What every figure shares ----------------------------------------------------------------------------------

def finite_values(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column with ±inf turned into NaN, so that a line shows a gap where a run stopped being finite."""
    return frame[column].replace([np.inf, -np.inf], np.nan)


def log_axis_floor(values: Iterable[ArrayLike]) -> Optional[float]:
    """The smallest value a log axis over `values` needs to show; None when no value is finite and positive.

    floor = max(smallest, p5 / 10^3), with p5 the 5th percentile of the finite positive values: the axis
    reaches three decades below the lowest twentieth of the data, and stops at the smallest value when
    that is nearer. So at most 5% of the values, the rare dips (the 1e-30 gradients of a saturated tanh
    after an explosion), can fall off the axis, and they no longer squash every other value into its top;
    a run whose norms really do sit that low most of the time (or climb by 20 decades before diverging)
    is shown whole. Zeros and negative values cannot be drawn on a log axis and do not count.
    """
    arrays = [np.asarray(array, dtype=float).ravel() for array in values]
    pooled = np.concatenate(arrays) if arrays else np.empty(0)
    positive = pooled[np.isfinite(pooled) & (pooled > 0)]
    if not len(positive):
        return None
    return float(max(positive.min(), np.percentile(positive, FLOOR_PERCENTILE) / 10**FLOOR_DECADES))


@dataclass(frozen=True)
class LogLimits:
    """A log axis' lower limit and how many finite values (zeros included) lie below it, off the axis."""

    bottom: float
    hidden: int

    def note(self) -> str:
        """'12 values below 3e-10 not shown', or '' when all are shown."""
        return f"{self.hidden} values below {self.bottom:.0e} not shown" if self.hidden else ""


def set_log_scale(axes: plt.Axes, values: Iterable[ArrayLike]) -> Optional[LogLimits]:
    """Put `axes`' y axis on a log scale starting at half of log_axis_floor(values), so the floor value
    itself sits clear of the axis. Call it once everything is drawn: the limit stops the autoscaling.
    Returns None (and leaves the axis alone) when no value is finite and positive."""
    arrays = [np.asarray(array, dtype=float).ravel() for array in values]
    floor = log_axis_floor(arrays)
    if floor is None:
        return None
    axes.set_yscale("log")
    bottom = floor / 2
    _, top = axes.set_ylim(bottom=bottom)
    decades = math.floor(math.log10(top)) - math.ceil(math.log10(bottom))
    if decades >= 1:
        # Labels as plain text (10⁻⁴): matplotlib's default typesets each as mathtext, a fresh parse per file.
        axes.yaxis.set_major_formatter(FuncFormatter(power_of_ten_label))
    if decades > LOG_MINOR_TICKS_DECADES:
        # Eight minor ticks a decade over many decades: hundreds of tick objects, most of a figure's drawing
        # time, for marks too close together to read.
        axes.yaxis.set_minor_locator(NullLocator())
    pooled = np.concatenate(arrays)
    return LogLimits(bottom, int(np.sum(np.isfinite(pooled) & (pooled < bottom))))


SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def power_of_ten_label(value: float, position: Optional[int] = None) -> str:
    """'10⁻⁴' for a power of ten, '' for any other tick (a log axis' minor ticks)."""
    if not value > 0:
        return ""
    exponent = round(math.log10(value))
    return "10" + str(exponent).translate(SUPERSCRIPTS) if math.isclose(value, 10.0**exponent, rel_tol=1e-6) else ""


def divergence_step(frame: pd.DataFrame) -> Optional[int]:
    """The first step whose loss or a gradient norm is not finite (the runner stops a run there: it diverged).

    Read from metrics.csv, not summary.json: a run's figures are drawn before its summary is written.
    """
    columns = [column for column in frame.columns if column == "loss" or column.startswith(GRAD_PREFIX)]
    if not columns or not len(frame):
        return None
    values = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    return int(frame["step"].iloc[rows[0]]) if len(rows) else None


def mark_divergence(axes: plt.Axes, step: int) -> None:
    """A dashed vertical line at the step where the run diverged."""
    axes.axvline(step, color=DIVERGENCE_COLOUR, linestyle="--", linewidth=1.2, label=f"diverged at step {step}")


def parameter_colour(index: int) -> str:
    colours = ARTICLE_COLOURS + [f"C{i}" for i in range(10) if f"C{i}" not in (THRESHOLD_COLOUR, DIVERGENCE_COLOUR)]
    return colours[index % len(colours)]


def draw_norm_curves(axes: plt.Axes, frame: pd.DataFrame, parameters: Sequence[str], after_clipping: bool) -> None:
    """Each parameter's gradient L2 norm per step before clipping (solid, labelled by its short name: "W"),
    and with `after_clipping` after it (dashed, same colour: "W after clipping")."""
    for index, name in enumerate(parameters):
        label = short_parameter_name(name, parameters)
        colour = parameter_colour(index)
        axes.plot(frame["step"], finite_values(frame, GRAD_PREFIX + name), "-", color=colour, linewidth=1.1,
                  label=label)
        if after_clipping and CLIPPED_PREFIX + name in frame.columns:
            axes.plot(frame["step"], finite_values(frame, CLIPPED_PREFIX + name), "--", color=colour, linewidth=1.1,
                      alpha=0.8, label=label + AFTER_CLIPPING)


def clipping_acted(frame: pd.DataFrame) -> bool:
    return "clipped" in frame.columns and bool(frame["clipped"].fillna(0).astype(bool).any())


# Metric scales ---------------------------------------------------------------------------------------------

# Metrics whose values lie in [0, 1] (the task metric accuracy, and the share of clipped steps): shown on
# that whole scale, so 0.04 against 0.08 reads as the small difference it is.
BOUNDED_METRICS = ("accuracy", "clip_fraction")
# A spread narrower than this share of the values' magnitude gets colour limits this wide around its middle.
MIN_RELATIVE_SPAN = 0.5
# Positive values spanning more decades than this are coloured on a log scale.
LOG_SCALE_DECADES = 2


@dataclass(frozen=True)
class MetricScale:
    """Colour (heatmap) or y (line) limits of a metric, on a linear or log scale."""

    low: float
    high: float
    log: bool = False

    def norm(self) -> Normalize:
        return LogNorm(self.low, self.high) if self.log else Normalize(self.low, self.high)


def metric_scale(values: ArrayLike, bounded: bool) -> MetricScale:
    """Limits that neither hide a real difference nor dramatise noise.

    bounded (a metric in [0, 1]): 0 to 1. Positive values spanning more than LOG_SCALE_DECADES decades
    (losses, gradient norms): their range on a log scale. Otherwise their range, widened around its middle
    to at least MIN_RELATIVE_SPAN of the largest magnitude: final losses of 2.8 and 3.3 are coloured over
    2.2 to 3.9, so they differ by a third of the colour map rather than all of it.
    """
    if bounded:
        return MetricScale(0.0, 1.0)
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return MetricScale(0.0, 1.0)
    low, high = float(finite.min()), float(finite.max())
    if low > 0 and high / low > 10**LOG_SCALE_DECADES:
        return MetricScale(low, high, log=True)
    span = max(high - low, MIN_RELATIVE_SPAN * max(abs(low), abs(high)), 1e-12)
    middle = (low + high) / 2
    return MetricScale(middle - span / 2, middle + span / 2)


# The clip threshold ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipMark:
    """How a run's clip mode shows on its gradient-norm figure.

    note: what clips what, for the title. label: the threshold line's legend entry, or None for no line (no
    clipping, or a threshold that is not a norm: value clipping bounds elements, AGC a ratio to the weights).
    per_step: the line is metrics.csv's logged clip_threshold (adaptive modes), else a constant `threshold`.
    on_total: the threshold bounds the norm of all gradients together, so the figure draws the total too.
    """

    note: str = ""
    label: Optional[str] = None
    threshold: Optional[float] = None
    per_step: bool = False
    on_total: bool = False


def clip_mark(clip: Optional[Mapping[str, Any]]) -> ClipMark:
    """The ClipMark of a config's `clip` section (as config.yaml writes it); an empty one when it is unknown.

    The rules follow gradexp/clipping: `norm` bounds each tensor's p-norm by c, `global_norm` the p-norm of
    all gradients together; AutoClip and ZClip bound the total L2 norm by a threshold logged per step; `value`
    clamps elements and AGC scales units against their weights, neither a bound on a norm the figure shows.
    """
    if not clip or not clip.get("mode"):
        return ClipMark()
    mode = str(clip["mode"])
    threshold = _number(clip.get("threshold"))
    norm = _norm_name(clip.get("norm_type", 2))
    # The figure's curves are L2 norms; a threshold on another norm says so.
    curves = "" if norm == "L2" else "; curves are L2"
    if mode == "none":
        return ClipMark(note="no clipping")
    if mode == "norm" and threshold is not None:
        return ClipMark(note=f"clip: each tensor's {norm} norm to {threshold:g}", threshold=threshold,
                        label=f"clip threshold {threshold:g} (each tensor's {norm} norm{curves})")
    if mode == "global_norm" and threshold is not None:
        return ClipMark(note=f"clip: the {norm} norm of all gradients together to {threshold:g}",
                        threshold=threshold, label=f"clip threshold {threshold:g} (total {norm} norm{curves})",
                        on_total=True)
    if mode == "value" and threshold is not None:
        return ClipMark(note=f"clip: each element to ±{threshold:g}")
    if mode == "agc" and threshold is not None:
        return ClipMark(note=f"clip: AGC, each unit's norm to {threshold:g} × its weights' norm")
    if mode == "autoclip":
        percentile = _number(clip.get("percentile"))
        return ClipMark(note="clip: AutoClip, the total norm to a percentile of the norms so far"
                             + (f" ({percentile:g})" if percentile is not None else ""),
                        label="AutoClip threshold per step (total L2 norm)", per_step=True, on_total=True)
    if mode == "zclip":
        return ClipMark(note="clip: ZClip, spikes of the total norm by z-score",
                        label="ZClip threshold per step (total L2 norm)", per_step=True, on_total=True)
    return ClipMark(note=f"clip: {mode}")


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


def draw_clip_threshold(axes: plt.Axes, frame: pd.DataFrame, mark: ClipMark) -> None:
    """The threshold as a dotted line: horizontal for a fixed mode, the logged value per step for an adaptive one."""
    if mark.label is None:
        return
    style = {"color": THRESHOLD_COLOUR, "linestyle": ":", "linewidth": 1.5, "label": mark.label}
    if not mark.per_step:
        axes.axhline(mark.threshold, **style)
    elif CLIP_THRESHOLD_COLUMN in frame.columns and frame[CLIP_THRESHOLD_COLUMN].notna().any():
        axes.plot(frame["step"], finite_values(frame, CLIP_THRESHOLD_COLUMN), **style)


# Layout ----------------------------------------------------------------------------------------------------

def stacked_panels(count: int, top: float, gap: float, bottom: float, left: float = 0.8, right: float = 0.25,
                   panel_height: float = PANEL_HEIGHT) -> tuple[plt.Figure, list[plt.Axes]]:
    """A FIGURE_WIDTH-inch figure of `count` panels one above the other; margins and gaps in inches."""
    height = top + count * panel_height + (count - 1) * gap + bottom
    figure = plt.figure(figsize=(FIGURE_WIDTH, height))
    panels = []
    for index in range(count):
        panel_bottom = height - top - index * (panel_height + gap) - panel_height
        panels.append(figure.add_axes((left / FIGURE_WIDTH, panel_bottom / height,
                                       (FIGURE_WIDTH - left - right) / FIGURE_WIDTH, panel_height / height)))
    return figure, panels


def legend_rows(labels: Sequence[str], width: float) -> int:
    """The fewest rows that let a legend of `labels`, filled column by column, fit in `width` inches."""
    for wanted in range(1, len(labels) + 1):
        columns = math.ceil(len(labels) / wanted)
        rows = math.ceil(len(labels) / columns)  # how matplotlib spreads the entries over the columns
        groups = [labels[start:start + rows] for start in range(0, len(labels), rows)]
        # Handle and padding, then about half an em per character: measuring the text would cost a draw.
        if sum(0.6 + 0.5 * LEGEND_FONT_POINTS / 72 * max(map(len, group)) for group in groups) <= width:
            return rows
    return max(len(labels), 1)


def unique_handles(panels: Iterable[plt.Axes]) -> dict[str, Any]:
    """Legend label -> its first artist over `panels` (a threshold drawn in both panels is named once)."""
    handles: dict[str, Any] = {}
    for axes in panels:
        for handle, label in zip(*axes.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    return handles


# grad_norms.pdf --------------------------------------------------------------------------------------------

def grad_norms_figure(frame: pd.DataFrame, parameters: Sequence[str], steps: Optional[int] = None,
                      log_y: bool = False, title: str = "", clip: Optional[Mapping[str, Any]] = None) -> plt.Figure:
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
    first = frame[frame["step"] <= steps] if steps is not None else frame
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
        if diverged_at is not None and diverged_at <= view["step"].max():
            mark_divergence(axes, diverged_at)
        axes.set_xlabel("step")
        axes.set_ylabel("gradient L2 norm")
        limits = set_log_scale(axes, _drawn_values(view, shown, after_clipping, mark)) if log_axis else None
        extent = f"first {steps} steps" if len(view) < len(frame) else f"whole run ({len(frame)} steps)"
        scale = "log scale" if log_axis else "linear scale"
        # y given: matplotlib then does not measure every tick label to place the title (a third of the drawing)
        axes.set_title(", ".join(part for part in (extent, scale, limits.note() if limits else "") if part),
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
    if mark.per_step and CLIP_THRESHOLD_COLUMN in frame.columns:
        columns.append(CLIP_THRESHOLD_COLUMN)
    return [frame[column] for column in columns] + ([pd.Series([mark.threshold])] if mark.threshold else [])


def plot_grad_norms(frame: pd.DataFrame, out: Path, parameters: Sequence[str], steps: Optional[int] = None,
                    log_y: bool = False, title: str = "", clip: Optional[Mapping[str, Any]] = None) -> None:
    """grad_norms_figure written to `out` (its suffix picks the format)."""
    save_figure(grad_norms_figure(frame, parameters, steps, log_y, title, clip), out)


# loss.pdf --------------------------------------------------------------------------------------------------

def loss_figure(frame: pd.DataFrame, evaluations: Optional[pd.DataFrame], metric: Optional[str],
                title: str = "") -> plt.Figure:
    """Training loss per step and per epoch (mean); below, the dev/test loss and the dev metric at each evaluation.

    The held-out panel is left out when no evaluation has a finite value (a run that diverged before its
    first dev evaluation has only a NaN test row). A loss spanning more than LOSS_LOG_DECADES decades (a run
    on its way to diverging) goes on a log axis. Each panel's legend sits above it, outside the curves; a
    diverged run gets a dashed line at the first step that was not finite.
    """
    held_out_rows = _finite_evaluations(evaluations, metric)
    figure, panels = stacked_panels(2 if len(held_out_rows) else 1, top=0.75, gap=0.85, bottom=0.5, right=0.75,
                                    panel_height=2.6)
    if title:
        figure.suptitle(title, fontsize="medium", y=1 - 0.08 / figure.get_figheight(), va="top")
    diverged_at = divergence_step(frame)
    training = panels[0]
    loss = finite_values(frame, "loss")
    training.plot(frame["step"], loss, color="C0", alpha=0.35, linewidth=0.8, label="train loss (step)")
    per_epoch = frame.assign(loss=loss).groupby("epoch").agg(step=("step", "max"), loss=("loss", "mean"))
    training.plot(per_epoch["step"], per_epoch["loss"], "o-", color="C0", markersize=3, label="train loss (epoch mean)")
    if diverged_at is not None:
        mark_divergence(training, diverged_at)
    training.set_xlabel("step")
    training.set_ylabel("training loss")
    _log_scale_if_wide(training, [loss])
    _legend_above(training, unique_handles([training]))
    if len(panels) == 2:
        _draw_held_out(panels[1], held_out_rows, metric)
        panels[1].set_xlim(training.get_xlim())  # steps line up with the training panel's
    return figure


def _finite_evaluations(evaluations: Optional[pd.DataFrame], metric: Optional[str]) -> pd.DataFrame:
    """The evaluation rows with a finite loss or metric (none of a run that diverged before evaluating)."""
    if evaluations is None or not len(evaluations) or "loss" not in evaluations.columns:
        return pd.DataFrame(columns=["step", "split", "loss"])
    columns = ["loss"] + ([metric] if metric and metric in evaluations.columns else [])
    values = evaluations[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    return evaluations[np.isfinite(values).any(axis=1)]


def _draw_held_out(axes: plt.Axes, evaluations: pd.DataFrame, metric: Optional[str]) -> None:
    for split, colour in (("dev", "C1"), ("test", "C2")):
        rows = evaluations[evaluations["split"] == split]
        if len(rows):
            axes.plot(rows["step"], finite_values(rows, "loss"), "o-", color=colour, markersize=3,
                      label=f"{split} loss")
    axes.set_xlabel("step")
    axes.set_ylabel("loss (mean per example)")
    _log_scale_if_wide(axes, [evaluations["loss"]])
    panels = [axes]
    dev = evaluations[evaluations["split"] == "dev"]
    # A metric that is the loss itself (mse for an MSE regression) would only retrace the dev loss line.
    if (metric and metric in dev.columns and len(dev) and dev[metric].notna().any()
            and not np.allclose(dev[metric], dev["loss"], equal_nan=True)):
        other = axes.twinx()
        other.plot(dev["step"], finite_values(dev, metric), "s--", color="C3", markersize=3, label=f"dev {metric}")
        other.set_ylabel(metric)
        # An accuracy on its whole 0-1 range: a step from 0.125 to 0.13 is noise, not a jump across the panel.
        scale = metric_scale(finite_values(dev, metric), metric in BOUNDED_METRICS)
        if scale.log:
            other.set_yscale("log")
        other.set_ylim(scale.low, scale.high)
        panels.append(other)
    _legend_above(axes, unique_handles(panels))


def _log_scale_if_wide(axes: plt.Axes, values: Sequence[ArrayLike]) -> None:
    """A log axis when every finite value is positive and they span more than LOSS_LOG_DECADES decades."""
    pooled = np.concatenate([np.asarray(array, dtype=float).ravel() for array in values])
    finite = pooled[np.isfinite(pooled)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 10**LOSS_LOG_DECADES:
        set_log_scale(axes, [finite])


def _legend_above(axes: plt.Axes, handles: Mapping[str, Any]) -> None:
    axes.legend(handles.values(), handles.keys(), loc="lower left", bbox_to_anchor=(0, 1.0), ncols=len(handles),
                fontsize="small", frameon=False, borderaxespad=0.2)


def plot_losses(frame: pd.DataFrame, evaluations: Optional[pd.DataFrame], out: Path, metric: Optional[str],
                title: str = "") -> None:
    """loss_figure written to `out` (its suffix picks the format)."""
    save_figure(loss_figure(frame, evaluations, metric, title), out)


# A run folder ----------------------------------------------------------------------------------------------

def plot_run(run_dir: Path, plot: PlotConfig, parameters: Sequence[str]) -> None:
    """grad_norms.pdf and loss.pdf of a run folder, from its metrics.csv, eval.csv and config.yaml (clip mode)."""
    record = RunFolder.read(run_dir)
    if record.metrics is None:
        raise DataError(str(run_dir / "metrics.csv"), "no such file")
    frame = record.metrics
    if not len(frame):
        return
    evaluation_path = run_dir / "eval.csv"
    evaluations = pd.read_csv(evaluation_path) if evaluation_path.exists() else None
    metric = evaluations.columns[-1] if evaluations is not None else None
    chosen = select_parameters(parameter_columns(frame), parameters, str(run_dir / "metrics.csv"))
    plot_grad_norms(frame, run_dir / "grad_norms.pdf", chosen, plot.steps, plot.log_y, title=run_dir.name,
                    clip=clip_section(record.config))
    plot_losses(frame, evaluations, run_dir / "loss.pdf", metric, title=run_dir.name)


def clip_section(flat_config: Optional[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    """The `clip` section of a config flattened to dotted keys (clip.mode ...), or None without one."""
    if flat_config is None:
        return None
    return {key[len("clip."):]: value for key, value in flat_config.items() if key.startswith("clip.")} or None


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


# gradexp plot ----------------------------------------------------------------------------------------------

def replot(metrics_csv: Path, output: Optional[Path] = None, parameters: Optional[Sequence[str]] = None,
           steps: Optional[int] = None, log_y: Optional[bool] = None, force: bool = False) -> Path:
    """Draw grad_norms_figure of any metrics.csv again; returns the file written.

    Settings not given come from the run folder the CSV sits in: parameters from summary.json's
    plot_parameters, else config.yaml's plot.params, else all; steps and log_y from config.yaml's plot
    section; the clip threshold from its clip section. The default output, REPLOT_NAME beside the CSV, is
    a name no run writes, and no existing file is replaced without `force`.
    """
    output = output if output is not None else metrics_csv.parent / REPLOT_NAME
    figure_format(output)
    frame = read_metrics(metrics_csv)
    folder = metrics_csv.parent
    record = RunFolder.read(folder)
    config = record.config or {}
    wanted = parameters or (record.summary.plot_parameters if record.summary else None) or config.get("plot.params")
    chosen = select_parameters(parameter_columns(frame), wanted, str(metrics_csv))
    steps = steps if steps is not None else config.get("plot.steps")
    log_y = log_y if log_y is not None else bool(config.get("plot.log_y", False))
    if output.exists() and not force:
        raise OutputError(str(output), "exists; pass --force to replace it, or -o to write another file")
    plot_grad_norms(frame, output, chosen, steps, log_y, title=folder.name, clip=clip_section(config))
    return output
