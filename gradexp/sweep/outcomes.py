"""What became of each point of a sweep, and training one point through the one run path (runner.open_run and
Training), its plots drawn in place or by the caller's FigureWorkers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from gradexp.config.schema import ExperimentConfig
from gradexp.errors import GradexpError
from gradexp.experiment import DatasetCache, Experiment, build_experiment
from gradexp.drawing import draw_run
from gradexp.runner import Training, open_run
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


@dataclass(frozen=True)
class ConcludedPoint:
    """A point whose training has ended and been concluded (Training.conclude); its plots and summary.json are
    still to come."""

    training: Training
    status: str
    test: Optional[dict[str, Any]]


def train_point(config: ExperimentConfig, sweep_dir: Path, experiment: Optional[Experiment] = None
                ) -> tuple[str, Optional[Path], Optional[str]]:
    """Run one point into `sweep_dir`, its plots drawn here; returns (status, run folder, error), never raises.

    `experiment`: the point's, when the caller has already built it (else it is built here). A run that
    crashed after its folder was made keeps that folder (its metrics up to the crash).
    """
    trained = conclude_point(config, sweep_dir, experiment)
    if not isinstance(trained, ConcludedPoint):
        return trained
    return finish_point(trained, lambda: draw_run(*trained.training.plot_arguments()))


def conclude_point(config: ExperimentConfig, sweep_dir: Path, experiment: Optional[Experiment] = None,
                   datasets: Optional[DatasetCache] = None) -> ConcludedPoint | tuple[str, Optional[Path], Optional[str]]:
    """The first part of train_point: open, train and conclude the run (its data from `datasets` when given);
    (FAILED, run folder, error) if that raised."""
    run_dir = None
    try:
        training = open_run(experiment or build_experiment(config, datasets), sweep_dir)
        run_dir = training.run_dir
        training.run_steps()
        status, test = training.conclude()
    except Exception as failure:  # noqa: BLE001  (one point's crash must not end the sweep)
        return FAILED, run_dir, failure_text(failure)
    return ConcludedPoint(training, status, test)


def finish_point(point: ConcludedPoint, drawing_seconds: Callable[[], float]
                 ) -> tuple[str, Optional[Path], Optional[str]]:
    """The second part of train_point: the plots (`drawing_seconds` draws them, or waits for them, and returns
    the seconds they took), then summary.json; (status, run folder, error)."""
    try:
        summary = point.training.write_summary(point.status, point.test, drawing_seconds())
    except Exception as failure:  # noqa: BLE001  (one point's crash must not end the sweep)
        return FAILED, point.training.run_dir, failure_text(failure)
    return summary.status, point.training.run_dir, None
