"""What an axis shows of the values: non-finite values as gaps, the log-axis floor that rare dips fall
below, powers of ten as plain-text tick labels, and the limits of a metric's colour or y scale."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm, Normalize
from matplotlib.ticker import FuncFormatter, NullLocator
from numpy.typing import ArrayLike

# The log-axis floor (log_axis_floor): this many decades below this percentile of the values.
FLOOR_PERCENTILE = 5
FLOOR_DECADES = 3
# A log axis spanning more decades than this gets no minor ticks.
LOG_MINOR_TICKS_DECADES = 2

# Metrics whose values lie in [0, 1] (the task metric accuracy, and the share of clipped steps): shown on
# that whole scale, so 0.04 against 0.08 reads as the small difference it is.
BOUNDED_METRICS = ("accuracy", "clip_fraction")
# A spread narrower than this share of the values' magnitude gets colour limits this wide around its middle.
MIN_RELATIVE_SPAN = 0.5
# Positive values spanning more decades than this are coloured on a log scale.
LOG_SCALE_DECADES = 2


def finite_values(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column with ±inf turned into NaN, so that a line shows a gap where a run stopped being finite."""
    return frame[column].replace([np.inf, -np.inf], np.nan)


# Log axes --------------------------------------------------------------------------------------------------

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


def set_log_scale(axes: Axes, values: Iterable[ArrayLike]) -> Optional[LogLimits]:
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


# Metric scales ---------------------------------------------------------------------------------------------

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
