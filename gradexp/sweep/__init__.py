"""`gradexp sweep`: one config, a grid of values, a run folder per point, and a table and figure of them all.

grid (axes -> points -> a checked config per point) -> execution (each point through
gradexp.runner.run, `jobs` at a time) or gradexp.vectorized (points of one shape as one batched
model) or a SweepBackend (gradexp.sweep_ray: each point a Ray task) -> table (sweep.csv, read
back from the run folders) and figure (sweep.pdf).

Every point's config is checked before any trains: a point whose values do not fit is recorded
as failed with the reason, and the others run; when no point fits, nothing runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence

import pandas as pd

from gradexp.config.loading import apply_overrides, load_config, parse_yaml
from gradexp.config.schema import ExperimentConfig
from gradexp.errors import ConfigError
from gradexp.recording import create_run_folder, write_yaml
from gradexp.sweep.execution import FAILED, PointOutcome, run_points
from gradexp.sweep.figure import write_sweep_pdf
from gradexp.sweep.grid import GridAxis, SweepPoint, expand, parse_axis, point_config
from gradexp.sweep.table import METRIC_COLUMNS, NORM_PREFIX, sweep_table, write_sweep_csv

__all__ = ["SweepBackend", "SweepPlan", "SweepResult", "plan_sweep", "run_sweep", "PointOutcome", "SweepPoint",
           "GridAxis"]


@dataclass(frozen=True)
class SweepPlan:
    """A checked sweep: the base config, the grid, and for every point its config or why it has none."""

    source: str
    base: ExperimentConfig
    overrides: tuple[str, ...]
    axes: list[GridAxis]
    points: list[SweepPoint]
    configs: list[ExperimentConfig | ConfigError]
    # The sweep.csv column sweep.pdf shows over the grid.
    metric: str

    @property
    def stem(self) -> str:
        return Path(self.source).stem

    @property
    def runnable(self) -> list[tuple[SweepPoint, ExperimentConfig]]:
        return [(point, config) for point, config in zip(self.points, self.configs)
                if isinstance(config, ExperimentConfig)]


class SweepBackend(Protocol):
    """Trains a sweep's valid points outside this process, e.g. gradexp.sweep_ray.RayBackend (each point a Ray task).

    Called with the (point, config) pairs, the sweep folder the run folders go in, and `finished`
    (told of each outcome as it comes); returns the outcomes in point order.
    """

    @property
    def settings(self) -> dict[str, Any]:
        """How the points ran, for sweep.yaml; its "backend" names the backend."""

    def __call__(self, points: Sequence[tuple[SweepPoint, ExperimentConfig]], sweep_dir: Path,
                 finished: Callable[[PointOutcome], None]) -> list[PointOutcome]: ...


@dataclass(frozen=True)
class SweepResult:
    folder: Path
    outcomes: list[PointOutcome]
    table: pd.DataFrame


def check_metric(metric: str) -> None:
    if metric not in METRIC_COLUMNS and not metric.startswith(NORM_PREFIX):
        raise ConfigError("--metric", "", f"expected one of {', '.join(METRIC_COLUMNS)} or "
                                          f"{NORM_PREFIX}<parameter>, got {metric!r}")


def plan_sweep(config_path: str | Path, overrides: Sequence[str], grid: Sequence[str], seeds: int,
               metric: str = "test") -> SweepPlan:
    """Check the base config (with `overrides`), expand the grid and check every point's config.

    Raises ConfigError for a bad base config, grid option or metric, or when every point's config is invalid.
    """
    check_metric(metric)
    base = load_config(config_path, overrides)
    source = base.source
    raw, _ = apply_overrides(parse_yaml(Path(config_path).read_text(encoding="utf-8"), source), overrides, source)
    axes = [parse_axis(text, source) for text in grid]
    if not axes and seeds < 2:
        raise ConfigError(source, "--grid", "nothing to sweep: give --grid section.key=v1,v2,... or --seeds N > 1")
    points = expand(axes, seeds, base.train.seed, source)
    configs: list[ExperimentConfig | ConfigError] = []
    for point in points:
        try:
            configs.append(point_config(raw, point, source))
        except ConfigError as failure:
            configs.append(failure)
    if not any(isinstance(config, ExperimentConfig) for config in configs):
        raise configs[0]
    return SweepPlan(source, base, tuple(overrides), axes, points, configs, metric)


def check_backend(backend: Optional[SweepBackend], jobs: int, vectorize: bool) -> None:
    """--jobs and --vectorize say how the points train in this process; a backend trains them elsewhere."""
    if backend is not None and (jobs > 1 or vectorize):
        raise ConfigError("--backend", "", f"--jobs and --vectorize are for the local backend; "
                                           f"{backend.settings['backend']} runs every point as its own task")


def run_sweep(plan: SweepPlan, out_dir: str | Path, jobs: int = 1, vectorize: bool = False,
              finished: Optional[Callable[[PointOutcome], None]] = None,
              backend: Optional[SweepBackend] = None, threads: Optional[int] = None) -> SweepResult:
    """Train every valid point into a new `out_dir/sweep-<config>-<UTC>/` and write sweep.csv and sweep.pdf there.

    The points train in this process (`jobs` at a time with `threads` torch threads each, see
    execution.run_points; or `vectorize`d), or through `backend`.
    """
    check_backend(backend, jobs, vectorize)
    finished = finished or (lambda outcome: None)
    folder = create_run_folder(out_dir, f"sweep-{plan.stem}")
    write_yaml(folder / "sweep.yaml", {
        "config": plan.source, "set": list(plan.overrides),
        "grid": {axis.key: list(axis.texts) for axis in plan.axes},
        "seeds": sorted({point.seed for point in plan.points}), "jobs": jobs, "vectorize": vectorize,
        "metric": plan.metric,
        **(backend.settings if backend is not None else {"backend": "local", "cpus_per_run": threads}),
    })
    outcomes = {}
    for point, config in zip(plan.points, plan.configs):
        if isinstance(config, ConfigError):
            outcomes[point.index] = PointOutcome(point, FAILED, error=str(config))
            finished(outcomes[point.index])
    if backend is not None:
        trained = backend(plan.runnable, folder, finished)
    elif vectorize:
        from gradexp.vectorized import run_points_vectorized

        trained = run_points_vectorized(plan.runnable, folder, finished)
    else:
        trained = run_points(plan.runnable, folder, jobs, finished, threads)
    outcomes.update({outcome.point.index: outcome for outcome in trained})
    ordered = [outcomes[point.index] for point in plan.points]
    table = sweep_table(ordered, plan.axes)
    write_sweep_csv(table, folder / "sweep.csv")
    write_sweep_pdf(table, plan.axes, plan.metric, [outcome.run_dir for outcome in ordered], folder / "sweep.pdf",
                    title=folder.name)
    return SweepResult(folder, ordered, table)
