"""sweep.csv: one row per point, read back from the run folders the points wrote.

The point's own columns: point (its number), one column per grid key (the value as typed), seed,
status (completed, diverged, interrupted, failed, not run) and error. Then the columns compare.csv
has for the point's run (gradexp.compare.table), under the same names: run, path, the config fields
that differ between the runs (those the grid sets are not repeated), steps, diverged_at_step,
best_dev/<metric>, test/<metric>, best_dev/loss, test/loss, max_grad_norm/<parameter> and
median_grad_norm/<parameter> (the plotted parameters and the total), explode_at,
first_explosion_step, first_explosion_parameter, final_loss, clip_fraction, seconds. A point without
a run folder (a config its builders reject, a worker that died) leaves them empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

from gradexp.compare.table import ComparisonTable
from gradexp.errors import DataError, OptionError
from gradexp.recording.files import write_bytes
from gradexp.recording.folder import RunFolder, is_run_folder
from gradexp.recording.layout import SUMMARY
from gradexp.recording.summary import RunSummary
from gradexp.sweep.grid import SEED_KEY, GridAxis
from gradexp.sweep.outcomes import PointOutcome

# --metric shorthands for columns whose names hold the runs' task metric (accuracy or mse).
METRIC_SHORTHANDS = {"test": "test/{metric}", "best_dev": "best_dev/{metric}", "test_loss": "test/loss",
                     "dev_loss": "best_dev/loss"}
# Columns --metric may name directly, besides those beginning with one of METRIC_PREFIXES.
METRIC_COLUMNS = ("final_loss", "clip_fraction", "steps", "diverged_at_step", "first_explosion_step", "seconds")
METRIC_PREFIXES = ("test/", "best_dev/", "max_grad_norm/", "median_grad_norm/")
# compare.csv's columns a sweep's own columns already give.
COMPARE_STATUS = "status"
INTEGER_COLUMNS = ("point", "seed", "steps", "diverged_at_step")


def check_metric(metric: str) -> None:
    """Raise OptionError unless --metric names a sweep.csv column a figure can show (or a shorthand for one)."""
    if metric in METRIC_SHORTHANDS or metric in METRIC_COLUMNS or metric.startswith(METRIC_PREFIXES):
        return
    raise OptionError("--metric", f"expected one of {', '.join([*METRIC_SHORTHANDS, *METRIC_COLUMNS])} or a column "
                                  f"beginning {', '.join(METRIC_PREFIXES)}, got {metric!r}")


def metric_column(table: pd.DataFrame, metric: str) -> str:
    """The sweep.csv column --metric names: a shorthand filled in with the runs' task metric (test ->
    test/accuracy), any other name as it is."""
    if metric not in METRIC_SHORTHANDS:
        return metric
    recorded = [column.split("/", 1)[1] for column in table.columns
                if column.startswith("test/") and column != "test/loss"]
    return METRIC_SHORTHANDS[metric].format(metric=recorded[0] if recorded else "loss")


def read_summary(run_dir: Optional[Path]) -> RunSummary:
    """A run folder's summary, or an empty one when there is no folder or the run never wrote one (a crash)."""
    if run_dir is None or not (run_dir / SUMMARY).is_file():
        return RunSummary()
    try:
        return RunSummary.read(run_dir / SUMMARY)
    except DataError:
        return RunSummary()


def point_columns(outcome: PointOutcome, axes: Sequence[GridAxis]) -> dict[str, Any]:
    point = outcome.point
    texts = {assignment.key: assignment.text for assignment in point.assignments}
    return {"point": point.index, **{axis.key: texts.get(axis.key) for axis in axes if axis.key != SEED_KEY},
            "seed": point.seed, "status": outcome.status, "error": outcome.error}


def sweep_table(outcomes: Sequence[PointOutcome], axes: Sequence[GridAxis], runs: Sequence[Optional[RunFolder]],
                compared: Optional[ComparisonTable]) -> pd.DataFrame:
    """sweep.csv's rows: each outcome's point columns, and `compared`'s columns for its run (`runs`, aligned with
    the outcomes: None where a point has no readable run; `compared` is the comparison of those that do)."""
    rows = [point_columns(outcome, axes) for outcome in outcomes]
    if compared is not None:
        repeated = {COMPARE_STATUS, SEED_KEY, *(axis.key for axis in axes)}
        for column in compared.columns:
            if column.key in repeated:
                continue
            cells = iter(column.cells)
            for row, run in zip(rows, runs):
                row[column.key] = next(cells) if run is not None else None
    table = pd.DataFrame(rows)
    # Whole numbers stay whole where a failed run leaves a gap (pandas would turn the column into floats).
    return table.astype({column: "Int64" for column in INTEGER_COLUMNS if column in table})


def readable_run(run_dir: Optional[Path]) -> Optional[RunFolder]:
    """The point's run folder, or None where there is none or its files cannot be read (a run that crashed)."""
    if run_dir is None or not is_run_folder(run_dir):
        return None
    try:
        return RunFolder.read(run_dir)
    except DataError:
        return None


def write_sweep_csv(table: pd.DataFrame, path: Path) -> None:
    write_bytes(path, table.to_csv(index=False, lineterminator="\n").encode("utf-8"))
