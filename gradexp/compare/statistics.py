"""How sure a comparison is: a group's mean with its confidence interval, and a group against a baseline.

Every distribution and test comes from scipy.stats: Student's t interval of a mean (or a percentile
bootstrap with a fixed seed), Welch's t-test and the Mann-Whitney U test for independent groups, the
paired t-test and the Wilcoxon signed-rank test for groups run on the same seeds (in gradexp the same
seed means the same data and initial weights, so each seed is a matched pair). Holm's step-down
correction, written here, adjusts the p-values of several groups compared with one baseline.

scipy.stats takes about 0.7 s to import, more than the rest of `gradexp compare`: it is imported by the
functions that test, and only a comparison with groups of two runs or more calls them.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterator, Literal, Optional, Sequence

import numpy as np

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
POWER = 0.8
# The percentile bootstrap's resamples and its generator's seed: the same runs give the same interval.
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
IntervalMethod = Literal["t", "bootstrap"]
TestFamily = Literal["welch", "mannwhitney"]
# The tests by family, for independent groups and for groups paired by seed.
TEST_NAMES = {("welch", False): "Welch t", ("welch", True): "paired t",
              ("mannwhitney", False): "Mann-Whitney U", ("mannwhitney", True): "Wilcoxon signed-rank"}


@dataclass(frozen=True)
class Summary:
    """A group's values of one quantity: how many it has and lacks, their mean, standard deviation (n - 1) and
    the CONFIDENCE interval of the mean (None where there are too few values: a mean needs 1, the rest 2)."""

    n: int
    missing: int
    mean: Optional[float] = None
    std: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None

    @property
    def half_width(self) -> Optional[float]:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2


def present(values: Sequence[Optional[float]]) -> np.ndarray:
    """The finite numbers among `values` (None, NaN and text are missing values)."""
    numbers = [float(value) for value in values
               if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)]
    return np.array(numbers, dtype=float)


def summarise(values: Sequence[Optional[float]], method: IntervalMethod = "t") -> Summary:
    """n, missing, mean, standard deviation and the mean's confidence interval (Student t, or the percentile
    bootstrap of BOOTSTRAP_RESAMPLES resamples seeded with BOOTSTRAP_SEED)."""
    numbers = present(values)
    n, missing = len(numbers), len(values) - len(numbers)
    if n == 0:
        return Summary(0, missing)
    mean = float(numbers.mean())
    if n == 1:
        return Summary(1, missing, mean)
    if np.ptp(numbers) == 0:  # every value the same: the interval is that value (scipy would answer NaN)
        return Summary(n, missing, float(numbers[0]), 0.0, float(numbers[0]), float(numbers[0]))
    std = float(numbers.std(ddof=1))
    from scipy import stats

    if method == "bootstrap":
        interval = stats.bootstrap((numbers,), np.mean, confidence_level=CONFIDENCE, n_resamples=BOOTSTRAP_RESAMPLES,
                                   method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED)).confidence_interval
    else:
        interval = stats.t.interval(CONFIDENCE, n - 1, loc=mean, scale=std / math.sqrt(n))
    return Summary(n, missing, mean, std, float(interval[0]), float(interval[1]))


@dataclass(frozen=True)
class Difference:
    """A group against the baseline: mean(group) − mean(baseline) (paired: the mean of the per-seed
    differences) with its CONFIDENCE interval (Welch's, or the paired t's), the test named and its p-value,
    and p_holm once holm() has adjusted it (None where a test cannot be made: fewer than two values a side, or
    no spread at all). n_baseline, n_group: the values each side brought to the test (paired: the pairs)."""

    test: str
    paired: bool
    n_baseline: int
    n_group: int
    difference: Optional[float] = None
    low: Optional[float] = None
    high: Optional[float] = None
    p: Optional[float] = None
    p_holm: Optional[float] = None


def difference(baseline: Sequence[Optional[float]], group: Sequence[Optional[float]],
               baseline_seeds: Optional[Sequence[Optional[int]]] = None,
               group_seeds: Optional[Sequence[Optional[int]]] = None, family: TestFamily = "welch") -> Difference:
    """`group` against `baseline`, paired by seed when both groups ran the same seeds, each once (a pair with a
    missing value on either side leaves the test); otherwise as independent groups."""
    pairs = seed_pairs(baseline, group, baseline_seeds, group_seeds)
    if pairs is not None:
        return _paired(pairs, family)
    return _independent(present(baseline), present(group), family)


def seed_pairs(baseline: Sequence[Optional[float]], group: Sequence[Optional[float]],
               baseline_seeds: Optional[Sequence[Optional[int]]],
               group_seeds: Optional[Sequence[Optional[int]]]) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(baseline, group) values matched seed by seed, both finite; None when the groups are not paired: seeds
    unknown, repeated within a group, or not the same set."""
    if baseline_seeds is None or group_seeds is None or None in baseline_seeds or None in group_seeds:
        return None
    if len(set(baseline_seeds)) != len(baseline_seeds) or set(baseline_seeds) != set(group_seeds) \
            or len(group_seeds) != len(set(group_seeds)):
        return None
    by_seed = dict(zip(group_seeds, group))
    matched = [(first, by_seed[seed]) for seed, first in zip(baseline_seeds, baseline)]
    kept = [(a, b) for a, b in matched if len(present([a, b])) == 2]
    return (np.array([a for a, _ in kept], dtype=float), np.array([b for _, b in kept], dtype=float))


def _paired(pairs: tuple[np.ndarray, np.ndarray], family: TestFamily) -> Difference:
    baseline, group = pairs
    name, n = TEST_NAMES[(family, True)], len(baseline)
    differences = group - baseline
    if n < 2:
        return Difference(name, True, n, n, float(differences.mean()) if n else None)
    mean = float(differences.mean())
    if np.all(differences == differences[0]):  # no spread: no test (t is infinite or undefined)
        return Difference(name, True, n, n, mean, mean, mean)
    from scipy import stats

    with nearly_equal_values_allowed():
        result = stats.ttest_rel(group, baseline)
        interval = result.confidence_interval(CONFIDENCE)
        p = result.pvalue if family == "welch" else stats.wilcoxon(group, baseline).pvalue
    return Difference(name, True, n, n, mean, float(interval.low), float(interval.high), float(p))


def _independent(baseline: np.ndarray, group: np.ndarray, family: TestFamily) -> Difference:
    name, sizes = TEST_NAMES[(family, False)], (len(baseline), len(group))
    if len(baseline) < 2 or len(group) < 2:
        mean = float(group.mean() - baseline.mean()) if len(baseline) and len(group) else None
        return Difference(name, False, *sizes, mean)
    mean = float(group.mean() - baseline.mean())
    if np.ptp(baseline) == 0 and np.ptp(group) == 0:  # no spread: no test
        return Difference(name, False, *sizes, mean, mean, mean)
    from scipy import stats

    with nearly_equal_values_allowed():
        result = stats.ttest_ind(group, baseline, equal_var=False)
        interval = result.confidence_interval(CONFIDENCE)
        p = result.pvalue if family == "welch" else stats.mannwhitneyu(group, baseline, alternative="two-sided").pvalue
    return Difference(name, False, *sizes, mean, float(interval.low), float(interval.high), float(p))


@contextmanager
def nearly_equal_values_allowed() -> Iterator[None]:
    """scipy warns on stderr when values are nearly equal (accuracies of runs that agree to the last digit);
    the test still holds, and exactly equal values never reach it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        yield


def holm(p_values: Sequence[Optional[float]]) -> list[Optional[float]]:
    """Holm's step-down adjustment of several p-values (None: no test, not counted): the k-th smallest of m is
    multiplied by m − k + 1, then made non-decreasing in that order and capped at 1."""
    tested = sorted((p, index) for index, p in enumerate(p_values) if p is not None)
    adjusted: list[Optional[float]] = [None] * len(p_values)
    running = 0.0
    for rank, (p, index) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[index] = running
    return adjusted


def verdict(found: Difference, higher_is_better: bool) -> str:
    """The plain-words reading of a difference at ALPHA (after Holm's adjustment where it was made)."""
    p = found.p_holm if found.p_holm is not None else found.p
    if p is None:
        if found.low is not None and found.low == found.high:
            return "no spread to test: every run gave the same difference" if found.paired \
                else "no spread to test: every run gave the same value"
        return "too few runs to test"
    if p >= ALPHA:
        sizes = found.n_group if found.n_group == found.n_baseline else f"{found.n_group} and {found.n_baseline}"
        return f"no evidence of a difference at n = {sizes}"
    better = (found.difference > 0) == higher_is_better
    return "better than the baseline" if better else "worse than the baseline"


def seeds_for_power(baseline: Sequence[Optional[float]], group: Sequence[Optional[float]],
                    paired: bool) -> Optional[int]:
    """Seeds per group for which a two-sided test at ALPHA detects the observed difference with POWER, by the
    normal approximation: n = (z₁₋α/₂ + z_power)² · σ² / Δ², σ² the pooled variance times 2 (independent
    groups) or the variance of the per-seed differences (paired). None without a difference or a spread."""
    a, b = present(baseline), present(group)
    if paired:
        if len(a) != len(b) or len(a) < 2:
            return None
        spread = float(np.var(b - a, ddof=1))
        delta = float(np.mean(b - a))
    else:
        if len(a) < 2 or len(b) < 2:
            return None
        spread = 2 * ((len(a) - 1) * np.var(a, ddof=1) + (len(b) - 1) * np.var(b, ddof=1)) / (len(a) + len(b) - 2)
        delta = float(b.mean() - a.mean())
    if delta == 0 or spread == 0:
        return None
    z = NormalDist().inv_cdf(1 - ALPHA / 2) + NormalDist().inv_cdf(POWER)
    return max(2, math.ceil(z * z * spread / (delta * delta)))
