"""A run folder read back: the one reader behind compare, sweep, plot, resume and the CLI.

Whatever an older or unfinished run lacks is None: a run folder is one with a summary.json or a
metrics.csv (the runner writes metrics.csv first and summary.json last, so a run that never
finished has only the former). A file that is present but corrupt raises a one-line DataError
naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import pandas as pd

from gradexp.errors import DataError
from gradexp.recording.files import read_config
from gradexp.recording.layout import (CONFIG, EVALUATIONS, GRAD_PREFIX, METRICS, STEP, SUMMARY, TIME_GRADIENT_FILES,
                                      parameter_names, time_gradient_columns)
from gradexp.recording.summary import RunSummary


@dataclass(frozen=True)
class RunFolder:
    """One run folder as written.

    summary: summary.json, or None when the run never finished.
    config: config.yaml flattened to dotted keys (optimizer.lr, clip.mode ...), or None without one.
    metrics: metrics.csv, or None without one.
    """

    path: Path
    summary: Optional[RunSummary]
    config: Optional[dict[str, Any]]
    metrics: Optional[pd.DataFrame]

    @classmethod
    def read(cls, path: Path) -> "RunFolder":
        summary = RunSummary.read(path / SUMMARY) if (path / SUMMARY).is_file() else None
        config = flatten(read_config(path / CONFIG)) if (path / CONFIG).is_file() else None
        metrics = read_metrics(path / METRICS) if (path / METRICS).is_file() else None
        return cls(path, summary, config, metrics)

    @property
    def parameters(self) -> list[str]:
        """The model's parameter names: summary.json's list, else metrics.csv's grad_norm columns."""
        if self.summary is not None and self.summary.parameters:
            return self.summary.parameters
        return parameter_names(self.metrics.columns) if self.metrics is not None else []

    def evaluations(self) -> Optional[pd.DataFrame]:
        """eval.csv, or None without one."""
        path = self.path / EVALUATIONS
        return read_csv(path, "an eval.csv") if path.is_file() else None

    def time_gradients(self) -> dict[str, pd.DataFrame]:
        """The gradients through time the run recorded (time_grads.csv; an LSTM's cell_grads.csv too) by the state
        they are of (h, c); empty for a run that recorded none."""
        return {state: read_time_gradients(self.path / file) for state, file in TIME_GRADIENT_FILES.items()
                if (self.path / file).is_file()}


def read_time_gradients(path: Path) -> pd.DataFrame:
    """A time_grads.csv: step, then t1 ... tT, all numbers; a one-line DataError for anything else."""
    frame = read_csv(path, "a time_grads.csv")
    expected = time_gradient_columns(len(frame.columns) - 1)
    if list(frame.columns) != expected or len(expected) < 2:
        raise DataError(str(path), f"is not a gradexp time_grads.csv (expected the columns {', '.join(expected[:3])} "
                                   f"... t<length>)")
    malformed = [column for column in frame.columns if not pd.api.types.is_numeric_dtype(frame[column])]
    if malformed:
        raise DataError(str(path), f"column {malformed[0]!r} holds values that are not numbers")
    return frame


def is_time_gradients_csv(path: Path) -> bool:
    """Whether `path` is a CSV whose header is a time_grads.csv's (step, t1, ...), whatever its name."""
    try:
        with path.open(encoding="utf-8") as file:
            header = file.readline().strip().split(",")
    except (OSError, UnicodeDecodeError):
        return False
    return len(header) > 1 and header == time_gradient_columns(len(header) - 1)


def is_run_folder(path: Path) -> bool:
    return (path / SUMMARY).is_file() or (path / METRICS).is_file()


def read_csv(path: Path, kind: str) -> pd.DataFrame:
    """A CSV file, with a one-line DataError when it is missing or cannot be read as one."""
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(str(path), "no such file") from None
    except IsADirectoryError:
        raise DataError(str(path), f"is a folder; expected {kind} file") from None
    except pd.errors.EmptyDataError:
        raise DataError(str(path), f"is empty; expected {kind} written by gradexp run") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as failure:
        raise DataError(str(path), f"cannot be read as CSV ({str(failure).splitlines()[0]})") from None


def read_metrics(path: str | Path) -> pd.DataFrame:
    """Load a metrics.csv, with a one-line DataError when it is missing or not one."""
    path = Path(path)
    frame = read_csv(path, "a metrics.csv")
    parameters = parameter_names(frame.columns)
    if STEP not in frame.columns or not parameters:
        raise DataError(str(path), "is not a gradexp metrics.csv (expected a 'step' column and grad_norm/<param> columns)")
    malformed = [c for c in [STEP, *(GRAD_PREFIX + p for p in parameters)]
                 if not pd.api.types.is_numeric_dtype(frame[c])]
    if malformed:
        raise DataError(str(path), f"column {malformed[0]!r} holds values that are not numbers")
    return frame


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: {"clip": {"mode": "norm"}} -> {"clip.mode": "norm"}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat
