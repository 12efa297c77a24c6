"""Runs in groups: the runs whose configs differ only in train.seed (or share the --group-by fields) are one
setting tried several times; a group's quantities are summarised over its runs, and each group is set against
a baseline group (gradexp.compare.statistics does the statistics).

A table built by gradexp.compare.table (a row per run) goes in; a GroupedComparison comes out, printed by
format_groups and written by groups_csv (compare_groups.csv, and a sweep's sweep_groups.csv).
"""

from __future__ import annotations

import csv
import io
import textwrap
from collections import Counter
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from gradexp.compare.statistics import (CONFIDENCE, Difference, IntervalMethod, Summary, TestFamily, difference,
                                        holm, seeds_for_power, summarise, verdict)
from gradexp.compare.table import NEVER, NOT_AVAILABLE, Column, ComparisonTable, config_text, number_text
from gradexp.errors import OptionError
from gradexp.recording.files import format_number

SEED_KEY = "train.seed"
# Task metrics for which a larger value is better (the loss and mse are better smaller).
HIGHER_IS_BETTER = {"accuracy"}
# The quantities summarised by default, by compare.csv column ({metric}: the runs' task metric).
DEFAULT_STATISTICS = ("test/{metric}", "best_dev/{metric}", "final_loss", "first_explosion_step", "clip_fraction",
                      "max_grad_norm/total")
# Config keys that name a section's component: a label says clip=norm rather than mode=norm.
COMPONENT_KEYS = ("mode", "name")
INTERVAL_NAMES = {"t": "Student t", "bootstrap": "percentile bootstrap"}


@dataclass(frozen=True)
class Group:
    """Runs that share the grouping fields' values: `rows` index the comparison table's runs; `seeds` their
    train.seed (None where a run has no config)."""

    number: int
    label: str
    values: tuple[Any, ...]
    rows: list[int]
    seeds: list[Optional[int]]


@dataclass(frozen=True)
class GroupedComparison:
    table: ComparisonTable
    # The config fields that define the groups; the groups in order of their first run.
    by: list[str]
    groups: list[Group]
    # The quantities summarised (compare.csv columns) and, for each, one Summary per group.
    columns: list[Column]
    summaries: dict[str, list[Summary]]
    interval: IntervalMethod
    # The baseline group's position in `groups`, the quantity tested against it (the test metric) and, per
    # group, its Difference from the baseline (None for the baseline itself) and the verdict.
    baseline: Optional[int] = None
    tested: Optional[Column] = None
    higher_is_better: bool = True
    differences: Optional[list[Optional[Difference]]] = None
    verdicts: Optional[list[str]] = None
    # For two groups: seeds per group that would detect the observed difference with 80% power.
    seeds_needed: Optional[int] = None

    @property
    def repeated(self) -> bool:
        """Whether any group holds more than one run (else a grouped table says nothing a run table does not)."""
        return any(len(group.rows) > 1 for group in self.groups)


def group_runs(table: ComparisonTable, by: Optional[Sequence[str]] = None) -> tuple[list[str], list[Group]]:
    """The grouping fields (`by`, checked against the runs' configs; by default every field that differs between
    the runs but train.seed) and the groups, in the order of their first run."""
    configs = [run.config or {} for run in table.runs]
    if by is None:
        fields = [key for key in table.differing if key != SEED_KEY]
    else:
        known = {key for config in configs for key in config}
        unknown = [key for key in by if key not in known]
        if unknown:
            raise OptionError("--group-by", f"no run's config has {unknown[0]!r}; the fields that differ between "
                                            f"the runs: {', '.join(table.differing) or 'none'}")
        fields = list(by)
    members: dict[tuple, list[int]] = {}
    for row, config in enumerate(configs):
        members.setdefault(tuple(_hashable(config.get(key)) for key in fields), []).append(row)
    groups = []
    for number, (values, rows) in enumerate(members.items(), start=1):
        seeds = [configs[row].get(SEED_KEY) for row in rows]
        groups.append(Group(number, group_label(fields, configs[rows[0]]), values, rows, seeds))
    return fields, groups


def group_label(fields: Sequence[str], config: dict[str, Any]) -> str:
    """clip=norm, threshold=5.0: each grouping field the run's config has, by its short name; "all runs" when
    no field groups them."""
    short = {key: short_key(key, fields) for key in fields}
    parts = [f"{short[key]}={config_text(config[key])}" for key in fields if key in config]
    return ", ".join(parts) or "all runs"


def short_key(key: str, keys: Sequence[str]) -> str:
    """A field's last part (a component key, clip.mode, by its section: clip); the full key where two fields
    would read alike."""
    def short(name: str) -> str:
        section, _, last = name.rpartition(".")
        return section.split(".")[-1] if last in COMPONENT_KEYS and section else last

    return short(key) if sum(short(other) == short(key) for other in keys) == 1 else key


def statistic_columns(table: ComparisonTable, names: Optional[Sequence[str]] = None) -> list[Column]:
    """The table's columns to summarise: `names` (compare.csv's or the printed headers), or DEFAULT_STATISTICS
    that the table has."""
    by_name = {column.key: column for column in table.columns}
    by_name.update({column.header: column for column in table.columns if column.header not in by_name})
    if names is None:
        metric = table.metrics[0] if table.metrics else "loss"
        wanted = [name.format(metric=metric) for name in DEFAULT_STATISTICS]
        return [by_name[name] for name in wanted if name in by_name]
    quantities = [column for column in table.columns
                  if column.numeric and column.printed and column.key not in table.differing]
    if not names:
        raise OptionError("--stats", "names no column; give at least one, e.g. --stats \"test accuracy\"")
    missing = [name for name in names if name not in by_name or by_name[name] not in quantities]
    if missing:
        raise OptionError("--stats", f"no quantity {missing[0]!r}; expected some of "
                                     f"{', '.join(column.header for column in quantities)} (or their compare.csv "
                                     f"names)")
    return [by_name[name] for name in names]


def grouped_comparison(table: ComparisonTable, by: Optional[Sequence[str]] = None,
                       statistics: Optional[Sequence[str]] = None, interval: IntervalMethod = "t",
                       baseline: Optional[str] = None, family: TestFamily = "welch") -> GroupedComparison:
    """Group the table's runs, summarise each group's quantities and, with two groups or more, set each against
    the baseline (`baseline`: a group's number or label; by default the first group) on the test metric."""
    fields, groups = group_runs(table, by)
    columns = statistic_columns(table, statistics)
    summaries = {column.key: [summarise([column.cells[row] for row in group.rows], interval) for group in groups]
                 for column in columns}
    grouped = GroupedComparison(table, fields, groups, columns, summaries, interval)
    chosen = baseline_position(groups, baseline)
    if len(groups) < 2 or not columns:
        return grouped
    tested = columns[0]
    metric = tested.key.split("/", 1)[-1]
    higher = metric in HIGHER_IS_BETTER
    reference = groups[chosen]
    found: list[Optional[Difference]] = [
        None if index == chosen else difference([tested.cells[row] for row in reference.rows],
                                                [tested.cells[row] for row in group.rows], reference.seeds,
                                                group.seeds, family)
        for index, group in enumerate(groups)]
    if sum(item is not None and item.p is not None for item in found) > 1:
        adjusted = holm([item.p if item else None for item in found])
        found = [item if item is None else _with_holm(item, p) for item, p in zip(found, adjusted)]
    tested_summaries = summaries[tested.key]
    verdicts = ["baseline" if item is None else
                verdict(item, higher) + _without_values(tested_summaries[position], tested_summaries[chosen])
                for position, item in enumerate(found)]
    needed = None
    if len(groups) == 2:
        other = groups[1 - chosen]
        pair = found[1 - chosen]
        needed = seeds_for_power([tested.cells[row] for row in reference.rows],
                                 [tested.cells[row] for row in other.rows], bool(pair and pair.paired))
    return GroupedComparison(table, fields, groups, columns, summaries, interval, chosen, tested, higher, found,
                             verdicts, needed)


def _without_values(group: Summary, baseline: Summary) -> str:
    """What the test left out: the runs of either side without the tested value (a diverged run's test metric)."""
    notes = [f"{summary.missing} of {summary.n + summary.missing} {side} runs without a value"
             for summary, side in ((group, "group"), (baseline, "baseline")) if summary.missing]
    return f" ({'; '.join(notes)})" if notes else ""


def baseline_position(groups: Sequence[Group], baseline: Optional[str]) -> int:
    """The position of the group `baseline` names (its number, or its label); 0 when not given."""
    if baseline is None:
        return 0
    for position, group in enumerate(groups):
        if baseline.strip() in (str(group.number), group.label):
            return position
    listed = "; ".join(f"{group.number}: {group.label}" for group in groups)
    raise OptionError("--baseline", f"no group {baseline!r}; the groups are {listed}")


def _with_holm(found: Difference, p_holm: Optional[float]) -> Difference:
    return Difference(found.test, found.paired, found.n_baseline, found.n_group, found.difference, found.low,
                      found.high, found.p, p_holm)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


# Printing ------------------------------------------------------------------------------------------------

def format_groups(grouped: GroupedComparison, width: int = 100) -> str:
    """Each group's quantities (n, missing, mean ± sd, CI), then each group against the baseline with a
    verdict, then (for two groups) the seeds that would detect the observed difference; sentences wrapped to
    `width` characters."""
    by = ", ".join(grouped.by) if grouped.by else "nothing (every run in one group)"
    lines = [_wrapped(f"{len(grouped.groups)} group(s) by {by}; mean ± sd and the {CONFIDENCE:.0%} CI of the mean "
                      f"({INTERVAL_NAMES[grouped.interval]}); missing: runs without the value (never: a run whose "
                      f"total norm never passed the explosion threshold)", width)]
    for group in grouped.groups:
        lines.append("")
        lines.append(_wrapped(f"#{group.number} {group.label} ({status_counts(grouped.table, group)})", width))
        rows = [["", "quantity", "n", "missing", "mean ± sd", f"{CONFIDENCE:.0%} CI"]]
        for column in grouped.columns:
            found = grouped.summaries[column.key][group.number - 1]
            never = sum(column.cells[row] == NEVER for row in group.rows)
            missing = str(found.missing) + (f" ({never} never)" if never else "")
            rows.append(["", column.header, str(found.n), missing, _mean_text(found),
                         _interval_text(found.low, found.high)])
        lines += _aligned(rows, numeric=(2, 3))
    if grouped.differences is not None and grouped.tested is not None:
        lines += [""] + _baseline_lines(grouped, width)
    return "\n".join(lines)


def status_counts(table: ComparisonTable, group: Group) -> str:
    """"3 runs: 2 completed, 1 diverged": how the group's runs ended (incomplete: no summary.json)."""
    status = next(column for column in table.columns if column.key == "status")
    ended = Counter(str(status.cells[row] or NOT_AVAILABLE).split(" at ")[0].split(" (")[0] for row in group.rows)
    runs = f"{len(group.rows)} run{'s' if len(group.rows) != 1 else ''}"
    return runs + ": " + ", ".join(f"{count} {name}" for name, count in ended.items())


def _wrapped(sentence: str, width: int) -> str:
    return textwrap.fill(sentence, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)


def _baseline_lines(grouped: GroupedComparison, width: int) -> list[str]:
    reference = grouped.groups[grouped.baseline]
    direction = "higher" if grouped.higher_is_better else "lower"
    tested = sum(found is not None and found.p is not None for found in grouped.differences)
    adjusted = tested > 1
    lines = [_wrapped(f"against the baseline #{reference.number} {reference.label}: {grouped.tested.header} "
                      f"({direction} is better); the difference of means (paired: the mean of the per-seed "
                      f"differences) with its {CONFIDENCE:.0%} CI by the t distribution (Welch's, or paired), "
                      f"whatever the test" + (f"; p Holm-adjusted over the {tested} comparisons tested" if adjusted
                                              else ""), width)]
    rows = [["#", "difference", f"{CONFIDENCE:.0%} CI", "test", "p (Holm)" if adjusted else "p", "verdict"]]
    for group, found, said in zip(grouped.groups, grouped.differences, grouped.verdicts):
        if found is None:
            continue
        p = found.p_holm if adjusted else found.p
        rows.append([str(group.number), _signed(found.difference), _interval_text(found.low, found.high, signed=True),
                     found.test, NOT_AVAILABLE if p is None else f"{p:.3g}", said])
    lines += _aligned(rows, numeric=(0, 1, 4))
    if grouped.seeds_needed is not None:
        other = next(found for found in grouped.differences if found is not None)
        have = other.n_group if other.paired or other.n_group == other.n_baseline else \
            f"{other.n_group} and {other.n_baseline}"
        lines.append(_wrapped(f"to detect a difference of {_signed(other.difference)} with 80% power at α = 0.05: "
                              f"about {grouped.seeds_needed} seeds per group (normal approximation; these groups have "
                              f"{have})", width))
    return lines


def _aligned(rows: list[list[str]], numeric: tuple[int, ...]) -> list[str]:
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return ["  ".join(cell.rjust(width) if index in numeric else cell.ljust(width)
                      for index, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in rows]


def _mean_text(found: Summary) -> str:
    if found.mean is None:
        return NOT_AVAILABLE
    return number_text(found.mean) + ("" if found.std is None else f" ± {number_text(found.std)}")


def _interval_text(low: Optional[float], high: Optional[float], signed: bool = False) -> str:
    if low is None or high is None:
        return NOT_AVAILABLE
    show = _signed if signed else number_text
    return f"[{show(low)}, {show(high)}]"


def _signed(value: Optional[float]) -> str:
    return NOT_AVAILABLE if value is None else f"{value:+.4g}"


# compare_groups.csv / sweep_groups.csv -------------------------------------------------------------------

def groups_csv(grouped: GroupedComparison) -> str:
    """A row per group: its number, label, grouping fields' values and runs; for each quantity its n, missing,
    mean, std, ci_low and ci_high; against the baseline, the difference of the tested quantity with its CI, the
    test, p, p_holm and the verdict. Empty cells: n/a."""
    header = ["group", "label", *grouped.by, "runs"]
    for column in grouped.columns:
        header += [f"{column.key}/{part}" for part in ("n", "missing", "mean", "std", "ci_low", "ci_high")]
    compared = grouped.differences is not None
    if compared:
        header += ["tested", "difference", "difference_ci_low", "difference_ci_high", "test", "p", "p_holm", "verdict"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for position, group in enumerate(grouped.groups):
        row: list[Any] = [group.number, group.label, *(config_text(value) if value is not None else None
                                                       for value in group.values), len(group.rows)]
        for column in grouped.columns:
            found = grouped.summaries[column.key][position]
            row += [found.n, found.missing, found.mean, found.std, found.low, found.high]
        if compared:
            item = grouped.differences[position]
            row += [grouped.tested.key] + ([None] * 6 if item is None else
                                           [item.difference, item.low, item.high, item.test, item.p, item.p_holm])
            row.append(grouped.verdicts[position])
        writer.writerow([NOT_AVAILABLE if cell is None else format_number(cell) if isinstance(cell, int | float)
                         else cell for cell in row])
    return buffer.getvalue()
