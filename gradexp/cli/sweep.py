"""`gradexp sweep CONFIG --grid KEY=V1,V2,...`: train a grid of runs and compare them."""

from __future__ import annotations

import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import click

from gradexp.cli import overrides_option, reports_errors
from gradexp.cli.export import export_and_report, export_options, open_exporters
from gradexp.errors import OptionError

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

    from gradexp.sweep import PointOutcome, SweepBackend
    from gradexp.sweep.backends.ray import RaySession

BACKEND_OPTIONS = ("local", "vectorized", "ray")
# Options that only mean something with some backends.
OPTION_BACKENDS = {"jobs": ("local",), "cpus_per_run": ("local", "ray"), "address": ("ray",),
                   "gpus_per_run": ("ray",), "retries": ("ray",)}


def describe_outcome(outcome: PointOutcome, done: int, total: int) -> str:
    """`[done/total] finished: <point>: <status>`, with where it diverged and its test metric when it has them.

    `done` counts the outcomes reported so far, so the counter rises even when points finish out of order.
    """
    from gradexp.sweep.table import read_summary

    text = f"[{done}/{total}] finished: {outcome.point.name}: {outcome.status}"
    if outcome.error:
        return text + f" ({outcome.error})"
    summary = read_summary(outcome.run_dir)
    if summary.diverged_at_step is not None:
        text += f" at step {summary.diverged_at_step}"
    # None where the run has none: a diverged model scores NaN, an interrupted run is not tested.
    if summary.test_value is not None:
        text += f", test {summary.metric} {summary.test_value:.4g}"
    return text


def counting(report: Callable[[str], None], total: int) -> Callable[[PointOutcome], None]:
    """A `finished` callback that hands `report` each outcome's line, numbered in the order they finish."""
    done = 0

    def finished(outcome: PointOutcome) -> None:
        nonlocal done
        done += 1
        report(describe_outcome(outcome, done, total))

    return finished


@click.command("sweep", short_help="Train a grid of runs and compare them.")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--grid", "grid", multiple=True, metavar="SECTION.KEY=V1,V2,...",
              help="Values of one config key (repeatable; the runs are every combination). Values read as --set "
                   "reads them; clip.threshold=none means no clipping (clip.mode none).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train every grid point with this many seeds: train.seed, train.seed+1, ...; each point is then "
                   "summarised over its seeds (mean, 95% CI) and tested against the first (sweep_groups.csv).")
@click.option("--out", "out_dir", default="runs", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder in which the sweep folder sweep-<config>-<UTC>/ is created.")
@click.option("--metric", default="test", show_default=True,
              help="sweep.csv column the sweep.pdf heatmap shows: test or best_dev (the task metric, e.g. "
                   "test/accuracy), test_loss, dev_loss, final_loss, clip_fraction, steps, diverged_at_step, "
                   "first_explosion_step, seconds, max_grad_norm/<parameter>, median_grad_norm/<parameter>, or any "
                   "test/... or best_dev/... column.")
@click.option("--backend", type=click.Choice(list(BACKEND_OPTIONS)), default="local", show_default=True,
              help="Where the runs train: local (here, --jobs at a time), vectorized (here, the points that share "
                   "model shapes as one batched model) or ray (each run a task on a Ray cluster; needs pip install "
                   "'gradexp[ray]').")
@click.option("--vectorize", is_flag=True, help="The same as --backend vectorized.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --backend local: runs trained at once, each in its own process.")
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
@export_options
@click.pass_context
@reports_errors
def command(context: click.Context, config: Path, grid: tuple[str, ...], seeds: int, out_dir: Path, metric: str,
            backend: str, vectorize: bool, jobs: int, address: Optional[str], cpus_per_run: int,
            gpus_per_run: float, retries: int, overrides: tuple[str, ...], tensorboard: Optional[Path],
            mlflow: Optional[str], experiment: Optional[str]) -> None:
    """Train CONFIG once per combination of the --grid values, each run in its own folder.

    Every point's config is checked before any run starts; a point whose values do not fit, or
    whose run fails, is marked failed in sweep.csv and the others go on (a diverged run is a result:
    status diverged). The sweep folder gets sweep.csv (a row per run: grid values, seed, status, then
    the columns compare.csv has for the run), sweep.pdf (the --metric heatmap over the first
    two grid axes, and every run's norm curve) and sweep.yaml (how it was called); then the runs'
    comparison table is printed. A line per run says how it ended, counting the runs as they finish.

    With --seeds N the runs of each point are a group, as `gradexp compare` forms them: sweep_groups.csv
    holds each point's mean, standard deviation and 95% CI of every quantity, the heatmap shows the
    means with their CI half-widths, and the table printed is the grouped one, every point tested
    against the first with a verdict.

    With --backend ray every run is a Ray task on a cluster (or a local Ray instance), its run
    folder sent back and written here; on a terminal a progress bar counts the finished runs.

    Example: gradexp sweep configs/srn_clip.yaml --grid optimizer.lr=0.05,0.1,0.2
    --grid clip.threshold=1,5,none --jobs 2

    Example: gradexp sweep configs/srn_clip.yaml --grid optimizer.lr=0.05,0.1,0.2
    --backend ray --address 10.0.0.1:6379

    With --tensorboard or --mlflow each run is exported as soon as it ends, as `gradexp export` would
    export it (MLflow: all into one experiment, to compare there); the exit status is 1 if an export failed.

    Example: gradexp sweep configs/srn_clip.yaml --grid optimizer.lr=0.05,0.1 --grid clip.threshold=1,none
    --mlflow sqlite:///mlflow.db --experiment srn-clip
    """
    from gradexp.sweep import plan_sweep, run_sweep

    backend = chosen_backend(context, backend, vectorize)
    # A bar of finished runs for the long sweeps, only on a terminal: in a log file it would be a bare label.
    lines = ProgressLines(show_bar=backend == "ray" and sys.stderr.isatty())
    built = build_backend(backend, jobs, cpus_per_run, gpus_per_run, retries, address, lines.echo)
    plan = plan_sweep(config, overrides, grid, seeds, metric)
    # Checked before any run trains: a missing package or an unusable store must not cost a sweep.
    exporters = open_exporters(tensorboard, mlflow, experiment)
    total = len(plan.points)
    click.echo(f"sweep of {total} runs ({len(plan.runnable)} valid) from {config}")
    export_failures = []

    def export_as_it_ends(outcome: PointOutcome) -> None:
        if outcome.run_dir is not None:
            report = export_and_report([outcome.run_dir], exporters, lines.echo, name_runs=False)
            export_failures.extend(report.failures)

    with lines.counting(total) as finished:
        result = run_sweep(plan, out_dir, built, both(finished, export_as_it_ends) if exporters else finished)
    from gradexp.compare import COMPACT, DEFAULT_WIDTH, format_groups, format_table
    from gradexp.sweep import SWEEP_GROUPS

    written = ["sweep.csv", *([SWEEP_GROUPS] if result.grouped is not None else []), "sweep.pdf"]
    click.echo("\n".join(f"wrote {result.folder / name}" for name in written))
    # As wide as the terminal, as `gradexp compare` prints it; DEFAULT_WIDTH into a pipe or a file.
    width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    if result.grouped is not None:
        click.echo(format_groups(result.grouped, width))
    elif result.compared is not None:
        click.echo(format_table(result.compared, COMPACT, width))
    if export_failures:
        sys.exit(1)


def both(first: Callable[[PointOutcome], None], second: Callable[[PointOutcome], None]
         ) -> Callable[[PointOutcome], None]:
    """A `finished` callback that calls `first`, then `second`."""
    def finished(outcome: PointOutcome) -> None:
        first(outcome)
        second(outcome)

    return finished


def chosen_backend(context: click.Context, backend: str, vectorize: bool) -> str:
    """--backend (or --vectorize, its alias for vectorized), checked against the options given for another one."""
    def given(name: str) -> bool:
        return context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT

    if vectorize:
        if given("backend") and backend != "vectorized":
            raise OptionError("--vectorize", f"means --backend vectorized; it cannot go with --backend {backend}")
        backend = "vectorized"
    for option, backends in OPTION_BACKENDS.items():
        if given(option) and backend not in backends:
            raise OptionError(f"--{option.replace('_', '-')}",
                              f"only used with --backend {' or '.join(backends)}")
    return backend


def build_backend(backend: str, jobs: int, cpus_per_run: int, gpus_per_run: float, retries: int,
                  address: Optional[str], echo: Callable[[str], None]) -> SweepBackend:
    """The backend named by --backend; Ray's is checked (Ray installed) before any work starts."""
    if backend == "local":
        from gradexp.sweep.backends.local import LocalBackend

        return LocalBackend(jobs, cpus_per_run)
    if backend == "vectorized":
        from gradexp.sweep.backends.vectorized import VectorizedBackend

        return VectorizedBackend()
    from gradexp.sweep.backends.ray import RayBackend, import_ray

    import_ray()

    def announce(session: RaySession) -> None:
        where = "a local Ray instance started for this sweep" if session.started_here else "the Ray cluster"
        echo(f"running on {where} at {session.address}")
        if session.dashboard_url:
            echo(f"Ray dashboard: {session.dashboard_url}")

    return RayBackend(cpus_per_run, gpus_per_run, retries, address, connected=announce)


class ProgressLines:
    """The sweep's lines on stdout, with (show_bar) a progress bar of finished runs on stderr kept under them."""

    def __init__(self, show_bar: bool) -> None:
        self.show_bar = show_bar
        self.bar: Optional[ProgressBar] = None

    def echo(self, line: str) -> None:
        if self.bar is not None:  # wipe the bar's line, and draw the bar again under the new line
            click.echo("\r\033[K", nl=False, err=True)
        click.echo(line)
        if self.bar is not None:
            self.bar.render_progress()

    @contextmanager
    def counting(self, total: int) -> Iterator[Callable[[PointOutcome], None]]:
        """A `finished` callback for the block: each outcome's line, counted as runs finish, advancing the bar."""

        def report(line: str) -> None:
            self.echo(line)
            if self.bar is not None:
                self.bar.update(1)

        if not self.show_bar:
            yield counting(report, total)
            return
        with click.progressbar(length=total, label="runs finished", show_pos=True, file=sys.stderr) as self.bar:
            yield counting(report, total)
        self.bar = None
