"""The statistics of grouped comparisons against scipy.stats and hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gradexp.compare.statistics import (BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, Difference, difference, holm,
                                        seeds_for_power, summarise, verdict)

BASELINE = [0.05, 0.09, 0.07, 0.11, 0.06, 0.08, 0.10, 0.04]
BETTER = [0.12, 0.15, 0.10, 0.16, 0.11, 0.14, 0.17, 0.09]


def test_mean_sd_and_student_t_interval_by_the_formula() -> None:
    found = summarise(BASELINE + [None, math.nan, "never"])
    values = np.array(BASELINE)
    sd = values.std(ddof=1)
    half = stats.t.ppf(0.975, len(values) - 1) * sd / math.sqrt(len(values))
    assert (found.n, found.missing) == (8, 3)
    assert found.mean == pytest.approx(values.mean()) and found.std == pytest.approx(sd)
    assert (found.low, found.high) == (pytest.approx(values.mean() - half), pytest.approx(values.mean() + half))
    assert found.half_width == pytest.approx(half)


def test_too_few_values_have_no_interval_and_equal_values_a_point() -> None:
    assert summarise([None, None]) == summarise([]).__class__(0, 2)
    one = summarise([0.3])
    assert (one.n, one.mean, one.std, one.low) == (1, 0.3, None, None)
    same = summarise([0.2, 0.2, 0.2])
    assert (same.std, same.low, same.high) == (0.0, 0.2, 0.2)


def test_bootstrap_interval_is_scipys_percentile_bootstrap_and_reproducible() -> None:
    first, second = summarise(BASELINE, "bootstrap"), summarise(BASELINE, "bootstrap")
    assert first == second
    reference = stats.bootstrap((np.array(BASELINE),), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile",
                                rng=np.random.default_rng(BOOTSTRAP_SEED)).confidence_interval
    assert (first.low, first.high) == (pytest.approx(reference.low), pytest.approx(reference.high))
    assert min(BASELINE) < first.low < np.mean(BASELINE) < first.high < max(BASELINE)


def test_welch_difference_interval_and_p_by_the_welch_satterthwaite_formula() -> None:
    a, b = np.array(BASELINE), np.array(BETTER[:6])
    found = difference(list(a), list(b))  # no seeds: independent groups
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    delta = b.mean() - a.mean()
    t = delta / math.sqrt(va + vb)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert found.test == "Welch t" and not found.paired and (found.n_baseline, found.n_group) == (8, 6)
    assert found.difference == pytest.approx(delta)
    assert (found.low, found.high) == (pytest.approx(delta - half), pytest.approx(delta + half))
    assert found.p == pytest.approx(2 * stats.t.sf(abs(t), df))


def test_the_rank_test_is_mann_whitney_for_independent_groups() -> None:
    found = difference(BASELINE, BETTER[:6], family="mannwhitney")
    assert found.test == "Mann-Whitney U"
    assert found.p == pytest.approx(stats.mannwhitneyu(BETTER[:6], BASELINE, alternative="two-sided").pvalue)


def test_groups_on_the_same_seeds_are_paired_seed_by_seed() -> None:
    seeds = list(range(8))
    shuffled = [3, 1, 7, 0, 5, 2, 6, 4]  # the other group's runs in another order
    other = [BETTER[seed] for seed in shuffled]
    found = difference(BASELINE, other, seeds, shuffled)
    reference = stats.ttest_rel(BETTER, BASELINE)
    assert found.test == "paired t" and found.paired and found.n_group == 8
    assert found.difference == pytest.approx(np.mean(np.array(BETTER) - BASELINE))
    assert found.p == pytest.approx(reference.pvalue)
    interval = reference.confidence_interval(0.95)
    assert (found.low, found.high) == (pytest.approx(interval.low), pytest.approx(interval.high))
    ranked = difference(BASELINE, other, seeds, shuffled, family="mannwhitney")
    assert ranked.test == "Wilcoxon signed-rank"
    assert ranked.p == pytest.approx(stats.wilcoxon(BETTER, BASELINE).pvalue)


def test_a_pair_with_a_missing_value_leaves_the_test_and_other_seeds_mean_independent_groups() -> None:
    seeds = list(range(8))
    with_gap = [None, *BETTER[1:]]  # seed 0 diverged: no test metric
    found = difference(BASELINE, with_gap, seeds, seeds)
    assert found.paired and found.n_group == 7
    assert found.p == pytest.approx(stats.ttest_rel(BETTER[1:], BASELINE[1:]).pvalue)
    unpaired = difference(BASELINE, BETTER, seeds, [seed + 100 for seed in seeds])
    assert not unpaired.paired and unpaired.test == "Welch t"


def test_holm_on_hand_worked_numbers() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> kept non-decreasing: 0.06
    assert holm([0.01, 0.04, None, 0.03, 0.005]) == [pytest.approx(0.03), pytest.approx(0.06), None,
                                                      pytest.approx(0.06), pytest.approx(0.02)]
    assert holm([0.5, 0.9]) == [pytest.approx(1.0), pytest.approx(1.0)]


@pytest.mark.parametrize("found, higher, expected", [
    (Difference("Welch t", False, 8, 8, 0.05, 0.01, 0.09, 0.01), True, "better than the baseline"),
    (Difference("Welch t", False, 8, 8, 0.05, 0.01, 0.09, 0.01), False, "worse than the baseline"),
    (Difference("paired t", True, 10, 10, -0.01, -0.03, 0.01, 0.2), True, "no evidence of a difference at n = 10"),
    (Difference("Welch t", False, 10, 7, -0.01, -0.03, 0.01, 0.2), True,
     "no evidence of a difference at n = 7 and 10"),
    # significant before Holm's adjustment, not after
    (Difference("Welch t", False, 5, 5, 0.05, 0.01, 0.09, 0.02, 0.06), True, "no evidence of a difference at n = 5"),
    (Difference("Welch t", False, 1, 1, 0.05), True, "too few runs to test"),
])
def test_verdicts_in_plain_words(found: Difference, higher: bool, expected: str) -> None:
    assert verdict(found, higher) == expected


def test_seeds_for_power_by_the_normal_approximation() -> None:
    baseline = [-1.0, 1.0, -1.0, 1.0]
    group = [value + 0.5 for value in baseline]  # the same spread, a difference of 0.5
    variance = np.var(baseline, ddof=1)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert seeds_for_power(baseline, group, paired=False) == math.ceil(2 * z * z * variance / 0.25)
    assert seeds_for_power(baseline, baseline, paired=False) is None
    differences = [0.05, 0.1, 0.02]
    assert seeds_for_power([0.1, 0.2, 0.4], [0.15, 0.3, 0.42], paired=True) == math.ceil(
        z * z * np.var(differences, ddof=1) / np.mean(differences) ** 2) == 4
