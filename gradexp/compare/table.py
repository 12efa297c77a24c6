"""The comparison table: a row per run, its columns built once for compare.csv and sweep.csv (table_csv) and for
the printed table (gradexp.compare.printing).

Every value comes from the run's summary.json where it has it; metrics.csv fills in what a summary
lacks (an unfinished or older run) and is the only source of the first explosion. A value neither
file holds is None, printed and written as "n/a" (which pandas reads back as missing).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from gradexp.compare.explosion import TOTAL_COLUMN, first_explosion
from gradexp.compare.runs import unique_names
from gradexp.errors import OptionError
from gradexp.recording.files import format_number
from gradexp.recording.folder import RunFolder
from gradexp.recording.layout import GRAD_PREFIX, short_parameter_name
from gradexp.recording.summary import RunSummary, number

NOT_AVAILABLE = "n/a"
NEVER = "never"
LOSS = "loss"
# The most config fields a compare.pdf legend label lists.
LEGEND_FIELDS = 4
# Config keys that change how a run is recorded or drawn, never what it learns: a difference there is noise.
PRESENTATION_KEYS = ("plot.", "train.flush_every")
_MISSING = object()


@dataclass(frozen=True)
class Column:
    """key: the compare.csv header (full names); header: the printed one (short names).

    cells: one per run, a number or text, or None where the run does not hold the value.
    show: how a present cell is printed; numeric columns are right-aligned.
    """

    key: str
    header: str
    cells: list[Any]
    show: Callable[[Any], str] = str
    numeric: bool = False
    printed: bool = True


@dataclass(frozen=True)
class ComparisonTable:
    runs: list[RunFolder]
    names: list[str]
    # Dotted config keys whose values differ between the runs, and each run's legend label built from them.
    differing: list[str]
    labels: list[str]
    # Parameters with norm columns and figure panels ("total" last).
    parameters: list[str]
    explode_at: float
    columns: list[Column]
    # The dev/test metrics shown (--metric, else each run's own); the loss beside them has columns of its own.
    metrics: list[str]


def build_table(runs: Sequence[RunFolder], metric: Optional[str] = None, explode_at: float = 100.0) -> ComparisonTable:
    """The table for `runs`; `metric` picks the dev/test metric column (default: each run's own metric)."""
    runs = list(runs)
    names = unique_names(run.path for run in runs)
    differing = differing_keys([run.config for run in runs])
    parameters = shown_parameters(runs)
    every_parameter = list(dict.fromkeys(name for run in runs for name in run.parameters))
    columns = [Column("run", "run", list(names)),
               Column("path", "path", [str(run.path) for run in runs], printed=False)]
    for key in differing:
        cells = [_config_value(run, key) for run in runs]
        columns.append(Column(key, key, cells, config_text, all(number(cell) is not None for cell in cells
                                                                if cell is not None)))
    columns.append(Column("status", "status", [status_text(run.summary) for run in runs]))
    summaries = [run.summary or RunSummary() for run in runs]
    columns += [Column("steps", "steps", [summary.steps for summary in summaries], str, True),
                Column("diverged_at_step", "diverged at", [summary.diverged_at_step for summary in summaries], str,
                       True)]
    metrics = metric_names(runs, metric)
    # The loss tells runs apart where a metric cannot (every run's accuracy at chance), so it comes along.
    with_loss = metrics + [LOSS] if LOSS not in metrics and LOSS in recorded_metrics(runs) else metrics
    for name in with_loss:
        columns.append(Column(f"best_dev/{name}", f"dev {name}",
                              [summary_number(run, "best_dev", name) for run in runs], number_text, True))
        columns.append(Column(f"test/{name}", f"test {name}",
                              [summary_number(run, "test", name) for run in runs], number_text, True))
    for parameter in parameters:
        short = short_parameter_name(parameter, parameters)
        for field, header, reduce in (("max_grad_norm", "max", np.max), ("median_grad_norm", "med", np.median)):
            columns.append(Column(f"{field}/{parameter}", f"{short} {header}",
                                  [norm_statistic(run, field, parameter, reduce) for run in runs], number_text, True))
    explosions = [explosion_cells(run, explode_at) for run in runs]
    columns += [
        Column("explode_at", "explode at", [explode_at] * len(runs), number_text, True, printed=False),
        Column("first_explosion_step", f"explode>{explode_at:g}", [step for step, _ in explosions], str, True),
        Column("first_explosion_parameter", "by", [parameter for _, parameter in explosions],
               lambda name: short_parameter_name(name, every_parameter) if name in every_parameter else name),
        Column("final_loss", "final loss", [summary.final_loss for summary in summaries], number_text, True),
        Column("clip_fraction", "clipped", [clip_fraction(run) for run in runs], lambda value: f"{value:.1%}", True),
        Column("median_depth_ratio", "depth ratio", [summary.median_depth_ratio for summary in summaries], number_text,
               True),
        Column("seconds", "time", [run.summary.seconds if run.summary else None for run in runs],
               lambda value: f"{value:.1f}s", True),
    ]
    labels = run_labels([run.config for run in runs], differing, names)
    return ComparisonTable(runs, names, differing, labels, parameters, explode_at, columns, metrics)


def differing_keys(configs: Sequence[Optional[Mapping[str, Any]]]) -> list[str]:
    """Dotted keys whose value differs between two runs, or that one run's config has and another's lacks.

    Runs without a config.yaml take no part (their cells say n/a); presentation keys never count.
    """
    present = [config for config in configs if config is not None]
    keys = dict.fromkeys(key for config in present for key in config)
    return [key for key in keys if not key.startswith(PRESENTATION_KEYS)
            and any(config.get(key, _MISSING) != present[0].get(key, _MISSING) for config in present[1:])]


def run_labels(configs: Sequence[Optional[Mapping[str, Any]]], keys: Sequence[str], names: Sequence[str]) -> list[str]:
    """Legend labels from what differs ("clip.mode=norm, clip.threshold=5.0"), keys a run lacks left out.

    A run whose label would be empty, shared with another run, or cut (runs of different experiments differ
    in dozens of fields: the first LEGEND_FIELDS are shown) is named by its folder as well.
    """
    labels = []
    for config, name in zip(configs, names):
        fields = [f"{key}={config_text(config[key])}" for key in keys if config and key in config]
        cut = len(fields) - LEGEND_FIELDS
        labels.append((", ".join(fields[:LEGEND_FIELDS]) + (f", ... ({cut} more)" if cut > 0 else ""), cut > 0))
    described = [label for label, _ in labels]
    return [label if label and not cut and described.count(label) == 1 else f"{name} ({label})" if label else name
            for name, (label, cut) in zip(names, labels)]


def shown_parameters(runs: Sequence[RunFolder]) -> list[str]:
    """The summaries' plot_parameters (W, U, b for the SRN), else every parameter; then "total"."""
    plotted = [name for run in runs if run.summary for name in run.summary.plot_parameters]
    chosen = plotted or [name for run in runs for name in run.parameters]
    return [name for name in dict.fromkeys(map(str, chosen)) if name != "total"] + ["total"]


def metric_names(runs: Sequence[RunFolder], wanted: Optional[str]) -> list[str]:
    """[wanted], checked against what the runs recorded; else each run's own metric, in order of appearance."""
    if wanted is None:
        return list(dict.fromkeys(run.summary.metric for run in runs if run.summary and run.summary.metric))
    recorded = recorded_metrics(runs)
    if wanted not in recorded:
        raise OptionError("--metric",
                          f"no run recorded {wanted!r}; they recorded {', '.join(sorted(recorded)) or 'none'}")
    return [wanted]


def recorded_metrics(runs: Sequence[RunFolder]) -> set[str]:
    """Every name the runs' best_dev or test recorded (loss and the metric); null or malformed parts hold none."""
    parts = [part for run in runs if run.summary for part in (run.summary.best_dev, run.summary.test)]
    return {key for part in parts if part for key in part if key != "step"}


def status_text(summary: Optional[RunSummary]) -> Optional[str]:
    """completed, diverged at step N, interrupted at step N, or incomplete (no summary.json)."""
    if summary is None:
        return "incomplete"
    status = summary.status
    if status is None:
        return None
    if status == "diverged" and summary.diverged_at_step is not None:
        return f"diverged at step {summary.diverged_at_step}"
    if status == "interrupted" and summary.steps is not None:
        return f"interrupted at step {summary.steps}"
    if summary.early_stopped and summary.steps is not None:
        return f"{status} (early stop at step {summary.steps})"
    return status


def norm_statistic(run: RunFolder, field: str, parameter: str, reduce: Callable[[np.ndarray], Any]) -> Optional[float]:
    """summary[field][parameter]; without it, `reduce` over the finite metrics.csv norms, as the runner computes it."""
    recorded = summary_number(run, field, parameter)
    if recorded is not None or run.metrics is None or GRAD_PREFIX + parameter not in run.metrics:
        return recorded
    values = run.metrics[GRAD_PREFIX + parameter].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    return float(reduce(finite)) if len(finite) else None


def explosion_cells(run: RunFolder, explode_at: float) -> tuple[Any, Any]:
    """(first explosion step, parameter): (NEVER, "-") when the total stayed finite and at most explode_at,
    (None, None) when metrics.csv cannot tell (missing, no steps yet, norms not recorded)."""
    metrics = run.metrics
    config = run.config or {}
    # train.record_norms: where runs written before the record section kept it
    norms_recorded = config.get("record.norms", config.get("train.record_norms", True)) is not False
    if metrics is None or not len(metrics) or TOTAL_COLUMN not in metrics or not norms_recorded:
        return None, None
    explosion = first_explosion(metrics, explode_at)
    return (NEVER, "-") if explosion is None else (explosion.step, explosion.parameter)


def clip_fraction(run: RunFolder) -> Optional[float]:
    """summary clip_fraction; without it, the mean of metrics.csv's `clipped` column (1 where clipping changed
    the gradient)."""
    recorded = run.summary.clip_fraction if run.summary else None
    if recorded is not None or run.metrics is None or "clipped" not in run.metrics or not len(run.metrics):
        return recorded
    return float(run.metrics["clipped"].mean())


def summary_number(run: RunFolder, part: str, name: str) -> Optional[float | int]:
    """summary.json's part[name] (best_dev, test, max_grad_norm, median_grad_norm), None where it has none."""
    return (getattr(run.summary, part) or {}).get(name) if run.summary else None


def number_text(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def config_text(value: Any) -> str:
    """A config value as YAML spells it: true, null, [a, b]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(map(config_text, value)) + "]"
    return str(value)


def _config_value(run: RunFolder, key: str) -> Any:
    """The run's value for `key` (numbers kept, to align and round-trip); None (n/a) when the run lacks the key,
    the text "null" when it sets it to null."""
    if run.config is None or key not in run.config:
        return None
    value = run.config[key]
    return value if number(value) is not None else config_text(value)


def table_csv(table: ComparisonTable) -> str:
    """compare.csv: every column under its full name; numbers written to round-trip exactly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([column.key for column in table.columns])
    for row in range(len(table.runs)):
        writer.writerow([NOT_AVAILABLE if column.cells[row] is None else
                         format_number(column.cells[row]) if isinstance(column.cells[row], int | float) else
                         column.cells[row] for column in table.columns])
    return buffer.getvalue()
