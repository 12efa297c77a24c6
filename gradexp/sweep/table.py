"""sweep.csv: one row per point, read back from the run folders the points wrote (their summary.json).

Columns: point, run (folder name), one column per grid key (the value as typed), seed, status
(completed, diverged, interrupted, failed, not run), error, steps, diverged_at_step,
diverged_parameter, metric (its name), best_dev and best_dev_step, test, test_loss, final_loss,
clip_fraction, seconds, then max_grad_norm/<parameter> for every parameter and the total.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

from gradexp.errors import DataError
from gradexp.recording.files import write_bytes
from gradexp.recording.layout import SUMMARY
from gradexp.recording.summary import RunSummary
from gradexp.sweep.grid import GridAxis
from gradexp.sweep.outcomes import PointOutcome

# Columns --metric may name besides max_grad_norm/<parameter>.
METRIC_COLUMNS = ("test", "best_dev", "test_loss", "final_loss", "clip_fraction", "steps", "diverged_at_step",
                  "seconds")
NORM_PREFIX = "max_grad_norm/"


def read_summary(run_dir: Optional[Path]) -> RunSummary:
    """A run folder's summary, or an empty one when there is no folder or the run never wrote one (a crash)."""
    if run_dir is None or not (run_dir / SUMMARY).is_file():
        return RunSummary()
    try:
        return RunSummary.read(run_dir / SUMMARY)
    except DataError:
        return RunSummary()


def sweep_row(outcome: PointOutcome, axes: Sequence[GridAxis]) -> dict[str, Any]:
    point = outcome.point
    summary = read_summary(outcome.run_dir)
    best_dev, test = summary.best_dev or {}, summary.test or {}
    row: dict[str, Any] = {"point": point.index, "run": outcome.run_dir.name if outcome.run_dir else None}
    texts = {assignment.key: assignment.text for assignment in point.assignments}
    row.update({axis.key: texts[axis.key] for axis in axes if axis.key in texts})
    row.update({
        "seed": point.seed,
        "status": outcome.status,
        "error": outcome.error,
        "steps": summary.steps,
        "diverged_at_step": summary.diverged_at_step,
        "diverged_parameter": summary.diverged_parameter,
        "metric": summary.metric,
        "best_dev": summary.best_dev_value,
        "best_dev_step": best_dev.get("step"),
        "test": summary.test_value,
        "test_loss": test.get("loss"),
        "final_loss": summary.final_loss,
        "clip_fraction": summary.clip_fraction,
        "seconds": summary.seconds,
    })
    row.update({f"{NORM_PREFIX}{name}": value for name, value in summary.max_grad_norm.items()})
    return row


INTEGER_COLUMNS = ("point", "seed", "steps", "diverged_at_step", "best_dev_step")


def sweep_table(outcomes: Sequence[PointOutcome], axes: Sequence[GridAxis]) -> pd.DataFrame:
    table = pd.DataFrame([sweep_row(outcome, axes) for outcome in outcomes])
    # Whole numbers stay whole where a failed run leaves a gap (pandas would turn the column into floats).
    return table.astype({column: "Int64" for column in INTEGER_COLUMNS})


def write_sweep_csv(table: pd.DataFrame, path: Path) -> None:
    write_bytes(path, table.to_csv(index=False, lineterminator="\n").encode("utf-8"))
