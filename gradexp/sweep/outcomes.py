"""What became of each point of a sweep, and training one point through the one run path (runner.run)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from gradexp.config.schema import ExperimentConfig
from gradexp.errors import GradexpError
from gradexp.experiment import Experiment, build_experiment
from gradexp.runner import open_run
from gradexp.sweep.grid import SweepPoint

# Statuses of points that have no run of their own to tell (a run's summary says completed, diverged or
# interrupted).
FAILED = "failed"
NOT_RUN = "not run"
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class PointOutcome:
    """What became of one point: its run folder (None when none was made), status and error."""

    point: SweepPoint
    status: str
    run_dir: Optional[Path] = None
    error: Optional[str] = None


def failure_text(failure: BaseException) -> str:
    if isinstance(failure, GradexpError):
        return str(failure)
    return f"{type(failure).__name__}: {failure}"


def train_point(config: ExperimentConfig, sweep_dir: Path, experiment: Optional[Experiment] = None
                ) -> tuple[str, Optional[Path], Optional[str]]:
    """Run one point into `sweep_dir`; returns (status, run folder, error) and never raises.

    `experiment`: the point's, when the caller has already built it (else it is built here). A run that
    crashed after its folder was made keeps that folder (its metrics up to the crash).
    """
    run_dir = None
    try:
        training = open_run(experiment or build_experiment(config), sweep_dir)
        run_dir = training.run_dir
        summary = training.train()
    except Exception as failure:  # noqa: BLE001  (one point's crash must not end the sweep)
        return FAILED, run_dir, failure_text(failure)
    return summary.status, run_dir, None
