"""The comparison table: a row per run, printed aligned for people and written as CSV for programs.

Every value comes from the run's summary.json where it has it; metrics.csv fills in what a summary
lacks (an unfinished or older run) and is the only source of the first explosion. A value neither
file holds is None, printed and written as "n/a" (which pandas reads back as missing).

compare.csv and the wide layout hold every column. The compact layout, printed by default, fits a terminal:
the run's short name, the config fields that differ under short names, status, metric, dev loss, max
norms, the first explosion, clipped share and time; where even that is too wide, the least important
columns give way (KEEP_ORDER) and a last line names them.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from gradexp.compare.explosion import TOTAL_COLUMN, first_explosion
from gradexp.compare.runs import short_names, unique_names
from gradexp.errors import OptionError
from gradexp.plotting.norms import short_parameter_name
from gradexp.recording.files import format_number
from gradexp.recording.folder import RunFolder
from gradexp.recording.layout import GRAD_PREFIX
from gradexp.recording.summary import RunSummary, number

NOT_AVAILABLE = "n/a"
NEVER = "never"
LOSS = "loss"
# format_table's layouts; any other value is a list of column names.
COMPACT, WIDE = "compact", "wide"
DEFAULT_WIDTH = 100
GAP = "  "
# The compact layout's column groups, from the last to give way to the first when the table is wider than the
# terminal; within a group the rightmost column goes first. "config detail": a field only some runs set, to one
# value wherever set (clip.eps beside clip.mode: agc), which follows from a field that differs.
KEEP_ORDER = ("run", "status", "explosion", "test metric", "clipped", "total max", "config", "time", "dev metric",
              "dev loss", "parameter max", "config detail")
# Config keys that name a section's component: the compact layout heads them by the section (clip.mode -> clip).
COMPONENT_KEYS = ("mode", "name")
# A config value longer than this is cut in the middle in the compact layout.
LONGEST_COMPACT_VALUE = 16
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
    norms_recorded = (run.config or {}).get("train.record_norms", True) is not False
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


def format_table(table: ComparisonTable, columns: str | Sequence[str] = COMPACT, width: int = DEFAULT_WIDTH) -> str:
    """The printed table: one aligned line per run under a header; numbers right-aligned.

    columns: COMPACT (at most `width` characters a line: compact_columns, the least important left out
    and named on a last line), WIDE (every column but the path), or the names of the columns to print,
    in order (compare.csv's headers or the wide layout's, see named_columns).
    """
    if isinstance(columns, str) and columns not in (COMPACT, WIDE):
        raise ValueError(f"columns: expected {COMPACT!r}, {WIDE!r} or a list of names, got {columns!r}")
    left_out: list[Column] = []
    if columns == COMPACT:
        chosen = compact_columns(table)
        shown, left_out = fit_to_width(chosen, width)
        if not tells_rows_apart(shown, len(table.runs)):
            # Short run names lean on the config fields beside them; with some of those left out, the full names.
            chosen[0] = ("run", replace(chosen[0][1], cells=list(table.names)))
            shown, left_out = fit_to_width(chosen, width)
    elif columns == WIDE:
        shown = [column for column in table.columns if column.printed]
    else:
        shown = named_columns(table, columns)
    texts = [cell_texts(column) for column in shown]
    widths = [max(map(len, text)) for text in texts]
    lines = [GAP.join(text[row].rjust(column_width) if column.numeric else text[row].ljust(column_width)
                      for column, text, column_width in zip(shown, texts, widths)).rstrip()
             for row in range(len(table.runs) + 1)]
    return "\n".join(lines + ([left_out_note(left_out, width)] if left_out else []))


def tells_rows_apart(columns: Sequence[Column], rows: int) -> bool:
    """Whether no two rows read alike in `columns` (the compact layout's run names and the fields it shows)."""
    return len(set(zip(*(cell_texts(column)[1:] for column in columns)))) == rows


def cell_texts(column: Column) -> list[str]:
    """The header, then each cell as printed: n/a for a missing value, nan or inf for a non-finite number."""
    return [column.header] + [NOT_AVAILABLE if cell is None else
                              number_text(cell) if isinstance(cell, float) and not math.isfinite(cell) else
                              column.show(cell) for cell in column.cells]


def printed_width(columns: Sequence[Column]) -> int:
    return sum(max(map(len, cell_texts(column))) for column in columns) + len(GAP) * (len(columns) - 1)


def compact_columns(table: ComparisonTable) -> list[tuple[str, Column]]:
    """The compact layout's columns in display order, each with its group in KEEP_ORDER.

    The config fields come under short names (compact_fields); the runs under short names too, down to
    a sweep point's number when the fields already tell every run apart (runs.short_names). The dev loss
    is left out where it repeats the metric (mse of an MSE regression).
    """
    by_key = {column.key: column for column in table.columns}
    fields, details = compact_fields(table)
    identified = bool(fields) and len(set(zip(*(field.cells for field in fields)))) == len(table.runs)
    names = short_names(table.names, [field.key for field in fields] if identified else [])
    chosen = [("run", replace(by_key["run"], cells=names))]
    chosen += [("config", field) for field in fields] + [("config detail", detail) for detail in details]
    chosen.append(("status", by_key["status"]))
    metric_columns = []
    for name in table.metrics:
        metric_columns += [by_key[f"best_dev/{name}"], by_key[f"test/{name}"]]
        chosen += [("dev metric", metric_columns[-2]), ("test metric", metric_columns[-1])]
    loss = by_key.get(f"best_dev/{LOSS}")
    if loss is not None and LOSS not in table.metrics and not any(
            cell_texts(loss)[1:] == cell_texts(metric)[1:] for metric in metric_columns):
        chosen.append(("dev loss", loss))
    chosen += [("parameter max", by_key[f"max_grad_norm/{name}"]) for name in table.parameters if name != "total"]
    chosen += [("total max", by_key["max_grad_norm/total"]), ("explosion", by_key["first_explosion_step"]),
               ("clipped", by_key["clip_fraction"]), ("time", by_key["seconds"])]
    return chosen


def compact_fields(table: ComparisonTable) -> tuple[list[Column], list[Column]]:
    """The differing config fields for the compact layout: those whose values differ, and the details (set
    by some runs only, to one value wherever set), each headed by compact_headers and its values shortened."""
    differing = [column for column in table.columns if column.key in table.differing]
    headers = compact_headers([column.key for column in differing])
    fields: list[Column] = []
    details: list[Column] = []
    for column, header in zip(differing, headers):
        varies = len({cell for cell in column.cells if cell is not None}) > 1
        (fields if varies else details).append(replace(column, header=header, show=compact_value))
    return fields, details


def compact_headers(keys: Sequence[str]) -> list[str]:
    """Short names for dotted config keys: a component key by its section (clip.mode -> clip), any other by
    the shortest dotted suffix no other key ends with (optimizer.lr -> lr); the full key where two would clash."""
    def short(key: str) -> str:
        parts = key.split(".")
        if len(parts) > 1 and parts[-1] in COMPONENT_KEYS:
            return ".".join(parts[:-1])
        suffixes = (".".join(parts[-count:]) for count in range(1, len(parts) + 1))
        return next((suffix for suffix in suffixes
                     if sum(other == suffix or other.endswith("." + suffix) for other in keys) == 1), key)

    headers = [short(key) for key in keys]
    return [header if headers.count(header) == 1 else key for header, key in zip(headers, keys)]


def compact_value(value: Any) -> str:
    """A config value in at most LONGEST_COMPACT_VALUE characters: numbers to 4 significant digits, longer
    text cut in the middle, keeping more of its end (a path's file name) than of its start."""
    text = number_text(value) if number(value) is not None else str(value)
    if len(text) <= LONGEST_COMPACT_VALUE:
        return text
    kept = LONGEST_COMPACT_VALUE - len("...")
    tail = kept * 2 // 3
    return text[:kept - tail] + "..." + text[-tail:]


def fit_to_width(chosen: Sequence[tuple[str, Column]], width: int) -> tuple[list[Column], list[Column]]:
    """(shown, left out): the least important columns (KEEP_ORDER) dropped until the table is at most `width`
    characters wide; the run column always stays. Both lists keep the display order."""
    position_in_group: Counter[str] = Counter()
    ranks = []
    for group, _ in chosen:
        ranks.append((KEEP_ORDER.index(group), position_in_group[group]))
        position_in_group[group] += 1
    shown = list(range(len(chosen)))
    while len(shown) > 1 and printed_width([chosen[index][1] for index in shown]) > width:
        shown.remove(max(shown, key=ranks.__getitem__))
    left_out = sorted(set(range(len(chosen))) - set(shown), key=ranks.__getitem__)
    return [chosen[index][1] for index in shown], [chosen[index][1] for index in left_out]


def left_out_note(left_out: Sequence[Column], width: int) -> str:
    """One line saying how many columns the compact layout left out and naming, the most important first, as
    many as fit in `width`."""
    headers = [column.header for column in left_out]
    counted = "1 column" if len(headers) == 1 else f"{len(headers)} columns"
    for count in range(len(headers), -1, -1):
        listed = ": " + ", ".join(headers[:count] + ["..."] * (count < len(headers))) if count else ""
        note = f"{counted} not shown to fit {width}{listed}; see gradexp compare --wide"
        if len(note) <= width:
            break
    return note


def named_columns(table: ComparisonTable, names: Sequence[str]) -> list[Column]:
    """The columns `names` picks, in its order: each name a compare.csv header (best_dev/loss) or the wide
    layout's (dev loss). A name no column has raises an OptionError."""
    if not names:
        raise OptionError("--columns",
                          "no column named; give compare.csv's headers or those of --wide, e.g. run,status")
    lookup = {column.header: column for column in table.columns}
    lookup.update({column.key: column for column in table.columns})
    unknown = [name for name in names if name not in lookup]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(lookup), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise OptionError("--columns", f"no column {unknown[0]!r}{hint}; name compare.csv's headers or those of --wide")
    return [lookup[name] for name in names]


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
