"""`gradexp sweep`: one config, a grid of values, a run folder per point, and a table and figure of them all.

grid (axes -> points -> a checked config per point) -> a backend (backends/: local, vectorized or
ray) trains the valid points, each through the runner's one loop -> outcomes -> table (sweep.csv,
read back from the run folders) and figure (sweep.pdf).

Every point's config is checked before any trains: a point whose values do not fit is recorded
as failed with the reason, and the others run; when no point fits, nothing runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import pandas as pd

from gradexp.compare.groups import GroupedComparison, grouped_comparison, groups_csv
from gradexp.compare.table import ComparisonTable, build_table
from gradexp.config.loading import read_raw_config
from gradexp.config.schema import ExperimentConfig
from gradexp.errors import ConfigError, OptionError
from gradexp.experiment import build_experiment
from gradexp.recording.files import create_run_folder, write_bytes, write_yaml
from gradexp.recording.layout import SWEEP_RECORD, TOTAL
from gradexp.sweep.backends import SweepBackend
from gradexp.sweep.figure import write_sweep_pdf
from gradexp.sweep.grid import GridAxis, SweepPoint, expand, parse_axis, point_config
from gradexp.sweep.outcomes import FAILED, PointOutcome
from gradexp.sweep.table import (METRIC_PREFIXES, check_metric, metric_column, readable_run, sweep_table,
                                 write_sweep_csv)

# A row per grid point, its seeds summarised (compare_groups.csv's columns): written when a point has several.
SWEEP_GROUPS = "sweep_groups.csv"

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


@dataclass(frozen=True)
class SweepResult:
    folder: Path
    outcomes: list[PointOutcome]
    # sweep.csv
    table: pd.DataFrame
    # The comparison of the runs that have a readable run folder; None when none has.
    compared: Optional[ComparisonTable]
    # Those runs grouped by grid point (their seeds summarised, each point against the first): with --seeds.
    grouped: Optional[GroupedComparison] = None


def plan_sweep(config_path: str | Path, overrides: Sequence[str], grid: Sequence[str], seeds: int,
               metric: str = "test") -> SweepPlan:
    """Check the base config (with `overrides`), expand the grid and check every point's config.

    Raises OptionError for a bad metric; ConfigError for a bad base config or grid option, or when every point's
    config is invalid.
    """
    check_metric(metric)
    raw_config = read_raw_config(config_path, overrides)
    base = raw_config.check()
    source = base.source
    raw = raw_config.sections
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
    if metric.startswith(METRIC_PREFIXES):
        check_metric_column(metric, next(config for config in configs if isinstance(config, ExperimentConfig)))
    return SweepPlan(source, base, tuple(overrides), axes, points, configs, metric)


def check_metric_column(metric: str, config: ExperimentConfig) -> None:
    """Raise OptionError unless the runs will have the column `metric` names: test/ and best_dev/ hold the loss and
    the task's metric, max_grad_norm/ and median_grad_norm/ the plotted parameters and the total. Builds one
    point's experiment to know them, before any point trains."""
    experiment = build_experiment(config)
    parameters = [*experiment.plot_parameters, TOTAL]
    names = {"test/": ["loss", experiment.metric.name], "best_dev/": ["loss", experiment.metric.name],
             "max_grad_norm/": parameters, "median_grad_norm/": parameters}
    prefix = next(prefix for prefix in names if metric.startswith(prefix))
    if metric[len(prefix):] not in names[prefix]:
        raise OptionError("--metric", f"the runs will have no column {metric!r}; they will have "
                                      f"{', '.join(prefix + name for name in names[prefix])}")


def run_sweep(plan: SweepPlan, out_dir: str | Path, backend: SweepBackend,
              finished: Optional[Callable[[PointOutcome], None]] = None) -> SweepResult:
    """Train every valid point through `backend` into a new `out_dir/sweep-<config>-<UTC>/`, and write sweep.csv
    and sweep.pdf there. `finished` hears of each point's outcome as it comes (the invalid points' first)."""
    finished = finished or (lambda outcome: None)
    folder = create_run_folder(out_dir, f"sweep-{plan.stem}")
    write_yaml(folder / SWEEP_RECORD, {
        "config": plan.source, "set": list(plan.overrides),
        "grid": {axis.key: list(axis.texts) for axis in plan.axes},
        "seeds": sorted({point.seed for point in plan.points}), "metric": plan.metric, **backend.settings,
    })
    outcomes = {}
    for point, config in zip(plan.points, plan.configs):
        if isinstance(config, ConfigError):
            outcomes[point.index] = PointOutcome(point, FAILED, error=str(config))
            finished(outcomes[point.index])
    outcomes.update({outcome.point.index: outcome for outcome in backend(plan.runnable, folder, finished)})
    ordered = [outcomes[point.index] for point in plan.points]
    # Each run folder read once, for sweep.csv, sweep.pdf and the caller's comparison table alike.
    runs = [readable_run(outcome.run_dir) for outcome in ordered]
    read = [run for run in runs if run is not None]
    compared = build_table(read) if read else None
    table = sweep_table(ordered, plan.axes, runs, compared)
    write_sweep_csv(table, folder / "sweep.csv")
    grouped = grouped_comparison(compared) if compared is not None else None
    if grouped is not None and grouped.repeated:
        write_bytes(folder / SWEEP_GROUPS, groups_csv(grouped).encode("utf-8"))
    else:
        grouped = None
    write_sweep_pdf(table, plan.axes, metric_column(table, plan.metric), [run.metrics if run else None for run in runs],
                    folder / "sweep.pdf", title=folder.name)
    return SweepResult(folder, ordered, table, compared, grouped)
