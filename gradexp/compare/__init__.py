"""`gradexp compare`: which runs exploded, when, where, and which fix worked best.

runs (find and read run folders) -> table (a row per run; explosion finds the first explosion)
-> figure (overlaid curves); this module writes compare.csv and compare.pdf into the output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from gradexp.compare.figure import comparison_figure
from gradexp.compare.runs import Gathered, gather_runs
from gradexp.compare.printing import COMPACT, DEFAULT_WIDTH, WIDE, format_table
from gradexp.compare.table import ComparisonTable, build_table, table_csv
from gradexp.errors import OutputError
from gradexp.plotting.output import save_figure
from gradexp.recording.files import create_run_folder, write_bytes

__all__ = ["COMPACT", "DEFAULT_WIDTH", "WIDE", "ComparisonTable", "Gathered", "build_table",
           "format_table", "gather_runs", "output_folder", "write_comparison"]


def output_folder(out: Optional[Path], runs_root: Path = Path("runs")) -> Path:
    """`out` (created if needed), or a new `runs_root/compare-<UTC timestamp>/` that never reuses a folder."""
    if out is None:
        return create_run_folder(runs_root, "compare")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise OutputError(str(out), f"cannot create this folder ({failure.strerror or failure})") from None
    return out


def write_comparison(table: ComparisonTable, folder: Path) -> list[Path]:
    """Write compare.csv and compare.pdf into `folder`; returns their paths."""
    written = [folder / "compare.csv", folder / "compare.pdf"]
    write_bytes(written[0], table_csv(table).encode("utf-8"))
    save_figure(comparison_figure(table), written[1])
    return written
