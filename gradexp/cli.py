"""The `gradexp` command: parse, call the library, print. Library errors become one line and an exit code here."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable

import click

from gradexp import __version__
from gradexp.config.loading import load_config
from gradexp.errors import GradexpError


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a library error into `error: <one line>` on stderr and its exit code; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except GradexpError as failure:
            click.echo(f"error: {failure}", err=True)
            sys.exit(failure.exit_code)

    return wrapper


overrides_option = click.option(
    "--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
    help="Override one config value (repeatable), e.g. --set optimizer.lr=0.1 --set clip.mode=none.",
)


class ProgressReporter:
    """A progress bar on stderr while a run trains, and the latest dev evaluation beside it."""

    def __init__(self) -> None:
        self._bar: Any = None
        self._dev = ""

    def run_started(self, run_dir: Path, total_steps: int) -> None:
        self._bar = click.progressbar(length=total_steps, label="training", file=sys.stderr,
                                      item_show_func=lambda _: self._dev)
        self._bar.__enter__()

    def step_done(self, step: int) -> None:
        self._bar.update(1)

    def evaluated(self, step: int, dev: dict[str, float]) -> None:
        self._dev = " ".join(f"dev {name} {value:.4g}" for name, value in dev.items())

    def run_finished(self, summary: dict[str, Any]) -> None:
        self._bar.__exit__(None, None, None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradexp")
def main() -> None:
    """gradexp: watch gradients explode and vanish, clip them, and compare the fixes.

    Example: gradexp run configs/srn_explode.yaml
    """


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@overrides_option
@click.option("--out", "out_dir", default="runs", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder in which the run folder is created.")
@reports_errors
def run(config: Path, overrides: tuple[str, ...], out_dir: Path) -> None:
    """Train one experiment and write its run folder.

    Example: gradexp run configs/srn_clip.yaml --set optimizer.lr=0.1 --out runs/
    """
    from gradexp.reporting import describe_summary
    from gradexp.runner import run as run_experiment

    result = run_experiment(load_config(config, overrides), out_dir, ProgressReporter())
    click.echo(describe_summary(result.run_dir, result.summary))


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@overrides_option
@reports_errors
def validate(config: Path, overrides: tuple[str, ...]) -> None:
    """Check a config (and its overrides) without training; prints the resolved config.

    Example: gradexp validate configs/srn_explode.yaml --set clip.mode=norm --set clip.threshold=5
    """
    import yaml

    from gradexp.experiment import build_experiment

    experiment = build_experiment(load_config(config, overrides))
    click.echo(yaml.safe_dump(experiment.config.to_dict(), sort_keys=False), nl=False)


@main.command()
@click.argument("metrics_csv", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="PDF to write [default: grad_norms.pdf beside the CSV].")
@click.option("--params", help="Comma-separated parameters to plot, full names or last component (W,U,b).")
@click.option("--steps", type=click.IntRange(min=1), help="Plot only the first N steps.")
@click.option("--log-y", is_flag=True, help="Logarithmic y axis.")
@reports_errors
def plot(metrics_csv: Path, output: Path | None, params: str | None, steps: int | None, log_y: bool) -> None:
    """Re-plot the gradient norms of any metrics.csv.

    Example: gradexp plot runs/srn_explode-20261123-101500/metrics.csv --params W,U,b --steps 40
    """
    from gradexp.plotting import parameter_columns, plot_grad_norms, read_metrics, select_parameters

    frame = read_metrics(metrics_csv)
    wanted = [name.strip() for name in params.split(",") if name.strip()] if params else None
    chosen = select_parameters(parameter_columns(frame), wanted, str(metrics_csv))
    output = output or metrics_csv.parent / "grad_norms.pdf"
    plot_grad_norms(frame, output, chosen, steps, log_y, title=metrics_csv.parent.name)
    click.echo(f"wrote {output}")


if __name__ == "__main__":
    main()
