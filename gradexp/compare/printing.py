"""The comparison table printed for people: aligned columns, numbers right-aligned, as wide as the terminal.

compare.csv and the wide layout hold every column. The compact layout, printed by default, fits a terminal:
the run's short name, the config fields that differ under short names, status, metric, dev loss, max
norms, the first explosion, clipped share and time; where even that is too wide, the least important
columns give way (KEEP_ORDER) and a last line names them.
"""

from __future__ import annotations

import difflib
import math
from collections import Counter
from dataclasses import replace
from typing import Any, Sequence

from gradexp.compare.runs import short_names
from gradexp.compare.table import LOSS, NOT_AVAILABLE, Column, ComparisonTable, number_text
from gradexp.errors import OptionError
from gradexp.recording.summary import number

# format_table's layouts; any other value is a list of column names.
COMPACT, WIDE = "compact", "wide"
DEFAULT_WIDTH = 100
GAP = "  "
# The compact layout's column groups, from the last to give way to the first when the table is wider than the
# terminal; within a group the rightmost column goes first. "config detail": a field only some runs set, to one
# value wherever set (clip.eps beside clip.mode: agc), which follows from a field that differs.
# A feed-forward stack's depth ratio (only its runs have one) right after the config fields that tell the runs
# apart.
KEEP_ORDER = ("run", "status", "explosion", "test metric", "clipped", "total max", "config", "depth ratio", "time",
              "dev metric", "dev loss", "parameter max", "config detail")
# Config keys that name a section's component: the compact layout heads them by the section (clip.mode -> clip).
COMPONENT_KEYS = ("mode", "name")
# A config value longer than this is cut in the middle in the compact layout.
LONGEST_COMPACT_VALUE = 16


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
               ("clipped", by_key["clip_fraction"])]
    # Feed-forward stacks' runs (seed 003): how far the first layer's gradient falls below the last's.
    depth = by_key["median_depth_ratio"]
    if any(cell is not None for cell in depth.cells):
        chosen.append(("depth ratio", depth))
    chosen.append(("time", by_key["seconds"]))
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
