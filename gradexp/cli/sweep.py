"""`gradexp sweep CONFIG --grid KEY=V1,V2,...`: train a grid of runs and compare them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import click

from gradexp.cli import overrides_option, reports_errors
from gradexp.errors import ConfigError

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

    from gradexp.sweep import PointOutcome, SweepPlan, SweepResult
    from gradexp.sweep_ray import RayBackend

# Options that only mean something with --backend ray (--cpus-per-run also sizes the local --jobs workers).
RAY_OPTIONS = ("address", "gpus_per_run", "retries")


def describe_outcome(outcome: PointOutcome, done: int, total: int) -> str:
    """`[done/total] finished: <point>: <status>`, with where it diverged and its test metric when it has them.

    `done` counts the outcomes reported so far, so the counter rises even when points finish out of order.
    """
    from gradexp.sweep.table import read_summary

    text = f"[{done}/{total}] finished: {outcome.point.name}: {outcome.status}"
    if outcome.error:
        return text + f" ({outcome.error})"
    summary = read_summary(outcome.run_dir)
    if summary.get("diverged_at_step") is not None:
        text += f" at step {summary['diverged_at_step']}"
    metric = summary.get("metric")
    test_value = (summary.get("test") or {}).get(metric)
    # null where the run has none: a diverged model scores NaN, an interrupted run is not tested.
    if test_value is not None:
        text += f", test {metric} {test_value:.4g}"
    return text


def counting(report: Callable[[str], None], total: int) -> Callable[[PointOutcome], None]:
    """A `finished` callback that hands `report` each outcome's line, numbered in the order they finish."""
    done = 0

    def finished(outcome: PointOutcome) -> None:
        nonlocal done
        done += 1
        report(describe_outcome(outcome, done, total))

    return finished


@click.command("sweep")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--grid", "grid", multiple=True, metavar="SECTION.KEY=V1,V2,...",
              help="Values of one config key (repeatable; the runs are every combination). Values read as --set "
                   "reads them; clip.threshold=none means no clipping (clip.mode none).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train every grid point with this many seeds: train.seed, train.seed+1, ...")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs trained at once, each in its own process.")
@click.option("--out", "out_dir", default="runs", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder in which the sweep folder sweep-<config>-<UTC>/ is created.")
@click.option("--metric", default="test", show_default=True,
              help="sweep.csv column the sweep.pdf heatmap shows: test, best_dev, test_loss, final_loss, "
                   "clip_fraction, steps, diverged_at_step, seconds or max_grad_norm/<parameter>.")
@click.option("--vectorize", is_flag=True,
              help="Train the points that share model shapes together, as one batched model in one process.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where the runs train: here (--jobs at a time), or on a Ray cluster, each run a Ray task "
                   "(needs pip install 'gradexp[ray]').")
@click.option("--address", metavar="ADDR",
              help="With --backend ray: the Ray cluster (host:port, ray://host:port or auto). Default: the cluster "
                   "in RAY_ADDRESS or the one `ray start` runs on this machine, else a local Ray instance.")
@click.option("--cpus-per-run", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPUs for each run: what Ray reserves for it with --backend ray, and a --jobs worker's torch "
                   "threads. The training itself uses the config's train.threads, so a run's numbers are the "
                   "same on either backend and with any --jobs.")
@click.option("--gpus-per-run", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="With --backend ray: GPUs (or a fraction of one) Ray reserves for each run; the config's "
                   "train.device chooses cuda.")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="With --backend ray: times a run whose worker died is started again.")
@overrides_option
@click.pass_context
@reports_errors
def command(context: click.Context, config: Path, grid: tuple[str, ...], seeds: int, jobs: int, out_dir: Path,
            metric: str, vectorize: bool, backend: str, address: Optional[str], cpus_per_run: int,
            gpus_per_run: float, retries: int, overrides: tuple[str, ...]) -> None:
    """Train CONFIG once per combination of the --grid values, each run in its own folder.

    Every point's config is checked before any run starts; a point whose values do not fit, or
    whose run fails, is marked failed in sweep.csv and the others go on. The sweep folder gets
    sweep.csv (a row per run: grid values, seed, status, best dev and test metric, max gradient
    norms), sweep.pdf (the --metric heatmap over the first two grid axes, and every run's norm
    curve) and sweep.yaml (how it was called); then the runs' comparison table is printed.

    With --backend ray every run is a Ray task on a cluster (or a local Ray instance), its run
    folder sent back and written here; a progress bar counts the finished runs.

    Example: gradexp sweep configs/srn_clip.yaml --grid optimizer.lr=0.05,0.1,0.2
    --grid clip.threshold=1,5,none --jobs 2

    Example: gradexp sweep configs/srn_clip.yaml --grid optimizer.lr=0.05,0.1,0.2
    --backend ray --address 10.0.0.1:6379
    """
    from gradexp.sweep import plan_sweep, run_sweep

    given = [name for name in RAY_OPTIONS
             if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if backend == "local" and given:
        raise ConfigError(f"--{given[0].replace('_', '-')}", "", "only used with --backend ray")
    ray_backend = ray_backend_for(cpus_per_run, gpus_per_run, retries, jobs, vectorize) if backend == "ray" else None
    plan = plan_sweep(config, overrides, grid, seeds, metric)
    total = len(plan.points)
    click.echo(f"sweep of {total} runs ({len(plan.runnable)} valid) from {config}")
    if ray_backend is not None:
        result = run_on_ray(plan, out_dir, address, ray_backend)
    else:
        result = run_sweep(plan, out_dir, jobs, vectorize, finished=counting(click.echo, total),
                           threads=None if vectorize else cpus_per_run)
    click.echo(f"wrote {result.folder / 'sweep.csv'} and {result.folder / 'sweep.pdf'}")
    try:
        from gradexp.compare import build_table, format_table, gather_runs
    except ImportError:
        return
    gathered = gather_runs([result.folder])
    if gathered.runs:
        click.echo(format_table(build_table(gathered.runs)))


def ray_backend_for(cpus_per_run: int, gpus_per_run: float, retries: int, jobs: int, vectorize: bool) -> RayBackend:
    """The Ray backend, checked (Ray installed, no local-only option) before any work starts."""
    from gradexp.sweep import check_backend
    from gradexp.sweep_ray import RayBackend, import_ray

    import_ray()
    backend = RayBackend(cpus_per_run, gpus_per_run, retries)
    check_backend(backend, jobs, vectorize)
    return backend


def run_on_ray(plan: SweepPlan, out_dir: Path, address: Optional[str], backend: RayBackend) -> SweepResult:
    """run_sweep through `backend` on the Ray cluster at `address`, with a progress bar of finished runs on stderr."""
    from gradexp.sweep import run_sweep
    from gradexp.sweep_ray import ray_session

    with ray_session(address) as session:
        where = "a local Ray instance started for this sweep" if session.started_here else "the Ray cluster"
        click.echo(f"running on {where} at {session.address}")
        if session.dashboard_url:
            click.echo(f"Ray dashboard: {session.dashboard_url}")
        total = len(plan.points)
        if not sys.stderr.isatty():  # a bar in a log file would be its bare label: the lines say it all
            return run_sweep(plan, out_dir, finished=counting(click.echo, total), backend=backend)
        with click.progressbar(length=total, label="runs finished", show_pos=True, file=sys.stderr) as bar:
            return run_sweep(plan, out_dir, finished=above_bar(bar, total), backend=backend)


def above_bar(bar: ProgressBar, total: int) -> Callable[[PointOutcome], None]:
    """A `finished` callback that prints each outcome's line above the progress bar and advances it."""

    def print_above(line: str) -> None:
        click.echo("\r\033[K", nl=False, err=True)  # wipe the bar's line; the update draws it under the new line
        click.echo(line)
        bar.update(1)

    return counting(print_above, total)
