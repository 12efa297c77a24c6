"""A run folder read into what both exporters write: series by step, hyper-parameters, final numbers, status.

Also its time-gradient profiles and the files to attach. The run folder stays the source of truth; this
module only reads it, through the readers every other command uses.

Series are named by where they come from, so an exporter needs no rule of its own:
metrics.csv's columns keep their names (grad_norm/<parameter>, clipped_norm/<parameter>, loss, lr, ...),
eval.csv's rows become dev/<column> and test/<column>, and summary.json's numbers summary/<dotted key>.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from gradexp.compare.runs import gather_runs, unique_names
from gradexp.compare.table import status_text
from gradexp.errors import DataError, GradexpError
from gradexp.recording.folder import RunFolder, flatten
from gradexp.recording.layout import (BEST_CHECKPOINT, EPOCH, EVALUATIONS, METRICS, RESUME_POINT, RUN_FILES, SPLIT,
                                      STEP, SWEEP_RECORD)
from gradexp.recording.summary import number

# The status of a run folder without summary.json (the run crashed, or is still training).
INCOMPLETE = "incomplete"
SUMMARY_PREFIX = "summary/"
EVALUATION_SPLITS = ("dev", "test")
# Checkpoints are for resuming training, not for reading a run: they stay out of the exported files.
EXPORTED_FILES = tuple(name for name in RUN_FILES if name not in (BEST_CHECKPOINT, RESUME_POINT))
# Summary fields that are the config again (clip) or not numbers about the run (the step lists).
NOT_FINAL_NUMBERS = ("clip.", "resumed_at_steps")

HyperValue = bool | int | float | str


@dataclass(frozen=True)
class Series:
    """One named series: a value per step (NaN where a step's value was not finite, as the file holds it)."""

    tag: str
    steps: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class RunContents:
    """One run as the exporters see it.

    folder: the run folder, resolved: the run's identity wherever it is exported.
    name: how the run is named where it is exported (the folder's name; <sweep>/<point> inside a sweep).
    status: summary.json's status (completed, diverged, interrupted), or incomplete without one.
    description: the status in a few words (diverged at step 12).
    hyperparameters: the resolved config flattened to dotted keys, every value a bool, number or text.
    final_numbers: summary.json's numbers by dotted key (test.accuracy, max_grad_norm.total ...); a missing
    one (a diverged run's test metric) is left out.
    time_profiles: time_grads.csv (and an LSTM's cell_grads.csv) by the state it is of, h (c).
    """

    folder: Path
    name: str
    status: str
    description: str
    hyperparameters: dict[str, HyperValue]
    series: list[Series]
    final_numbers: dict[str, float]
    time_profiles: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def last_step(self) -> int:
        """The last step any series reached (0 for a run that recorded none)."""
        return max((int(series.steps.max()) for series in self.series if len(series.steps)), default=0)


@dataclass
class GatheredContents:
    """The runs that could be read, in the order found, and one error per path or run that could not."""

    runs: list[RunContents] = field(default_factory=list)
    failures: list[GradexpError] = field(default_factory=list)


def gather_contents(paths: Sequence[str | Path]) -> GatheredContents:
    """Read every run found under `paths` (run folders or folders holding them, as `gradexp compare` takes them);
    a path or run that cannot be read (a corrupt metrics.csv) is a failure, and the others are still read."""
    gathered = gather_runs(paths)
    result = GatheredContents(failures=list(gathered.failures))
    names = export_names([run.path for run in gathered.runs])
    for run, name in zip(gathered.runs, names):
        try:
            result.runs.append(read_contents(run, name))
        except DataError as failure:
            result.failures.append(failure)
    return result


def read_contents(run: RunFolder, name: str) -> RunContents:
    summary = run.summary
    metrics_path = run.path / METRICS
    series = [] if run.metrics is None else metric_series(run.metrics, metrics_path)
    evaluations = run.evaluations()
    if evaluations is not None:
        series += evaluation_series(evaluations, run.path / EVALUATIONS)
    return RunContents(
        folder=run.path.resolve(), name=name,
        status=(summary.status or INCOMPLETE) if summary else INCOMPLETE,
        description=status_text(summary) or INCOMPLETE,
        hyperparameters={key: hyper_value(value) for key, value in (run.config or {}).items()},
        series=series,
        final_numbers=final_numbers(summary.to_json()) if summary else {},
        time_profiles=run.time_gradients(),
        files=[run.path / file for file in EXPORTED_FILES if (run.path / file).is_file()],
    )


def metric_series(metrics: pd.DataFrame, path: Path) -> list[Series]:
    """Every metrics.csv column but step as a series by step; a column with no value at all (clip_threshold
    without clipping) is left out."""
    steps = whole_steps(metrics, path)
    return [Series(column, steps, numbers(metrics, column, path)) for column in metrics.columns
            if column != STEP and metrics[column].notna().any()]


def evaluation_series(evaluations: pd.DataFrame, path: Path) -> list[Series]:
    """eval.csv's loss and metric columns as dev/<column> and test/<column>, each by step."""
    missing = [column for column in (STEP, SPLIT) if column not in evaluations.columns]
    if missing:
        raise DataError(str(path), f"is not a gradexp eval.csv (no {missing[0]!r} column)")
    found = []
    for split in EVALUATION_SPLITS:
        rows = evaluations[evaluations[SPLIT] == split]
        if rows.empty:
            continue
        steps = whole_steps(rows, path)
        found += [Series(f"{split}/{column}", steps, numbers(rows, column, path)) for column in rows.columns
                  if column not in (STEP, EPOCH, SPLIT)]
    return found


def whole_steps(frame: pd.DataFrame, path: Path) -> np.ndarray:
    steps = pd.to_numeric(frame[STEP], errors="coerce")
    if steps.isna().any() or (steps != steps.round()).any():
        raise DataError(str(path), f"column {STEP!r} holds values that are not whole numbers")
    return steps.to_numpy(dtype=np.int64)


def numbers(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A column as floats (empty cells NaN); a one-line DataError when it holds anything else."""
    values = pd.to_numeric(frame[column], errors="coerce")
    if (values.isna() & frame[column].notna()).any():
        raise DataError(str(path), f"column {column!r} holds values that are not numbers")
    return values.to_numpy(dtype=np.float64)


def final_numbers(summary: Mapping[str, Any]) -> dict[str, float]:
    """summary.json's numbers by dotted key (best_dev.step, test.accuracy, max_grad_norm.total, seconds ...)."""
    return {key: float(value) for key, value in flatten(summary).items()
            if number(value) is not None and not key.startswith(NOT_FINAL_NUMBERS)}


def hyper_value(value: Any) -> HyperValue:
    """A config value as a hyper-parameter: bools, numbers and text as they are, None as "none" (what --set
    takes for it), and a list as its JSON text ([16, 16])."""
    if value is None:
        return "none"
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value)


def run_name(folder: Path) -> str:
    """The folder's name, after its sweep's (sweep-srn_clip-20261130-101500/000-lr0.05-seed0) inside a sweep: the
    same point of two sweeps exported to one place stays two runs."""
    if (folder.parent / SWEEP_RECORD).is_file():
        return f"{folder.parent.name}/{folder.name}"
    return folder.name


def export_names(folders: Sequence[Path]) -> list[str]:
    """Each folder's run_name; where two folders of one export share it, enough of their paths to tell them apart."""
    names = [run_name(folder) for folder in folders]
    longer = unique_names(folders)
    return [name if names.count(name) == 1 else alternative for name, alternative in zip(names, longer)]
