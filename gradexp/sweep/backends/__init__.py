"""Where a sweep's points train: each backend takes the valid points and returns their outcomes.

    local       here, one at a time or `jobs` at once in worker processes (backends.local)
    vectorized  here, the points that share a model's shapes as one batched model (backends.vectorized)
    ray         each point a task on a Ray cluster (backends.ray; the optional extra gradexp[ray])

Every backend trains each point through the runner's one loop (runner.Training) and writes the same
run folders; `run_sweep` calls the backend it is given and never asks which one it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from gradexp.config.schema import ExperimentConfig
from gradexp.sweep.grid import SweepPoint
from gradexp.sweep.outcomes import PointOutcome


class SweepBackend(Protocol):
    """Trains a sweep's valid points.

    Called with the (point, config) pairs, the sweep folder the run folders go in, and `finished`
    (told of each outcome as it comes; an error it raises is the caller's and reaches the caller);
    returns the outcomes in point order.
    """

    @property
    def settings(self) -> dict[str, Any]:
        """How the points ran, for sweep.yaml; its "backend" names the backend."""

    def __call__(self, points: Sequence[tuple[SweepPoint, ExperimentConfig]], sweep_dir: Path,
                 finished: Callable[[PointOutcome], None]) -> list[PointOutcome]: ...
