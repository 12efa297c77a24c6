"""sweep.csv: one row per point, read back from the run folders the points wrote (their summary.json).

Columns: point, run (folder name), one column per grid key (the value as typed), seed, status
(completed, diverged, interrupted, failed, not run), error, steps, diverged_at_step,
diverged_parameter, metric (its name), best_dev and best_dev_step, test, test_loss, final_loss,
clip_fraction, seconds, then max_grad_norm/<parameter> for every parameter and the total.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

from gradexp.recording import write_bytes
from gradexp.sweep.outcomes import PointOutcome
from gradexp.sweep.grid import GridAxis

# Columns --metric may name besides max_grad_norm/<parameter>.
METRIC_COLUMNS = ("test", "best_dev", "test_loss", "final_loss", "clip_fraction", "steps", "diverged_at_step",
                  "seconds")
NORM_PREFIX = "max_grad_norm/"


def read_summary(run_dir: Optional[Path]) -> dict[str, Any]:
    """A run folder's summary.json, or {} when there is no folder or the run never wrote one."""
    if run_dir is None:
        return {}
    try:
        return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def sweep_row(outcome: PointOutcome, axes: Sequence[GridAxis]) -> dict[str, Any]:
    point = outcome.point
    summary = read_summary(outcome.run_dir)
    metric = summary.get("metric")
    best_dev, test = summary.get("best_dev") or {}, summary.get("test") or {}
    row: dict[str, Any] = {"point": point.index, "run": outcome.run_dir.name if outcome.run_dir else None}
    texts = {assignment.key: assignment.text for assignment in point.assignments}
    row.update({axis.key: texts[axis.key] for axis in axes if axis.key in texts})
    row.update({
        "seed": point.seed,
        "status": outcome.status,
        "error": outcome.error,
        "steps": summary.get("steps"),
        "diverged_at_step": summary.get("diverged_at_step"),
        "diverged_parameter": summary.get("diverged_parameter"),
        "metric": metric,
        "best_dev": best_dev.get(metric),
        "best_dev_step": best_dev.get("step"),
        "test": test.get(metric),
        "test_loss": test.get("loss"),
        "final_loss": summary.get("final_loss"),
        "clip_fraction": summary.get("clip_fraction"),
        "seconds": summary.get("seconds"),
    })
    row.update({f"{NORM_PREFIX}{name}": value for name, value in (summary.get("max_grad_norm") or {}).items()})
    return row


INTEGER_COLUMNS = ("point", "seed", "steps", "diverged_at_step", "best_dev_step")


def sweep_table(outcomes: Sequence[PointOutcome], axes: Sequence[GridAxis]) -> pd.DataFrame:
    table = pd.DataFrame([sweep_row(outcome, axes) for outcome in outcomes])
    # Whole numbers stay whole where a failed run leaves a gap (pandas would turn the column into floats).
    return table.astype({column: "Int64" for column in INTEGER_COLUMNS})


def write_sweep_csv(table: pd.DataFrame, path: Path) -> None:
    write_bytes(path, table.to_csv(index=False, lineterminator="\n").encode("utf-8"))
