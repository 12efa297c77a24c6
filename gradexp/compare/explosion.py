"""Where a run's gradients first exploded, read from the pre-clip norms in its metrics.csv."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from gradexp.recording.layout import GRAD_PREFIX, TOTAL, parameter_names

TOTAL_COLUMN = GRAD_PREFIX + TOTAL


@dataclass(frozen=True)
class Explosion:
    step: int
    parameter: str


def first_explosion(metrics: pd.DataFrame, threshold: float) -> Optional[Explosion]:
    """The first step at which the total gradient norm passed `threshold` or stopped being finite, and the culprit.

    With n_t the total pre-clip norm at step t (metrics.csv `grad_norm/total`) and X the threshold,
    the explosion step is s = min{t : n_t > X or n_t is not finite}; None when no step qualifies.

    The parameter is the one whose own norm passed X or went non-finite first. Because
    n_t = sqrt(sum_p ||g_p,t||^2) >= ||g_p,t|| for every parameter p, and n_t is non-finite whenever
    some ||g_p,t|| is, no parameter gets there before step s: the race is decided at s itself. There
    the culprit is the first parameter (in metrics.csv order, as the runner's `diverged_parameter`)
    whose norm is not finite; failing that, the parameter with the largest norm at s (the first such
    in file order on a tie). That parameter passed X itself whenever any did; when none did, the
    total passed X through several moderate norms and it names the largest contributor.
    """
    total = metrics[TOTAL_COLUMN].to_numpy(dtype=float)
    exploded = np.flatnonzero((total > threshold) | ~np.isfinite(total))
    if not len(exploded):
        return None
    row = int(exploded[0])
    parameters = parameter_names(metrics.columns)
    norms = metrics[[GRAD_PREFIX + name for name in parameters]].iloc[row].to_numpy(dtype=float)
    non_finite = np.flatnonzero(~np.isfinite(norms))
    culprit = int(non_finite[0]) if len(non_finite) else int(np.argmax(norms))
    return Explosion(step=int(metrics["step"].iloc[row]), parameter=parameters[culprit])
