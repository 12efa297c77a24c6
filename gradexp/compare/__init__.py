"""`gradexp compare`: which runs exploded, when, where, and which fix worked best.

runs (find and read run folders) -> table (a row per run; explosion finds the first explosion)
-> groups (runs that differ only in their seed, summarised; statistics against a baseline) -> figure
(overlaid curves) or group_figure (each group's median and quartiles); this module writes compare.csv,
compare_groups.csv and compare.pdf into the output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from gradexp.compare.figure import comparison_figure
from gradexp.compare.group_figure import group_figure
from gradexp.compare.groups import GroupedComparison, format_groups, grouped_comparison, groups_csv
from gradexp.compare.runs import Gathered, gather_runs
from gradexp.compare.printing import COMPACT, DEFAULT_WIDTH, WIDE, format_table
from gradexp.compare.table import ComparisonTable, build_table, table_csv
from gradexp.errors import OutputError
from gradexp.plotting.output import save_figure
from gradexp.recording.files import create_run_folder, write_bytes

__all__ = ["COMPACT", "DEFAULT_WIDTH", "WIDE", "ComparisonTable", "Gathered", "GroupedComparison", "build_table",
           "format_groups", "format_table", "gather_runs", "grouped_comparison", "output_folder", "write_comparison"]


def output_folder(out: Optional[Path], runs_root: Path = Path("runs")) -> Path:
    """`out` (created if needed), or a new `runs_root/compare-<UTC timestamp>/` that never reuses a folder."""
    if out is None:
        return create_run_folder(runs_root, "compare")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise OutputError(str(out), f"cannot create this folder ({failure.strerror or failure})") from None
    return out


def write_comparison(table: ComparisonTable, folder: Path, grouped: Optional[GroupedComparison] = None,
                     x_field: Optional[str] = None) -> list[Path]:
    """Write compare.csv and compare.pdf into `folder`, and with `grouped` compare_groups.csv (compare.pdf then
    draws the groups, and with `x_field` the tested metric against that field); returns their paths."""
    written = [folder / "compare.csv"]
    write_bytes(written[0], table_csv(table).encode("utf-8"))
    if grouped is not None:
        written.append(folder / "compare_groups.csv")
        write_bytes(written[-1], groups_csv(grouped).encode("utf-8"))
    written.append(folder / "compare.pdf")
    figure = group_figure(grouped, x_field) if grouped is not None else comparison_figure(table)
    save_figure(figure, written[-1])
    return written
