"""`gradexp run CONFIG`: train one experiment into a new run folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from gradexp.cli import overrides_option, reports_errors
from gradexp.config.loading import load_config


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



@click.command("run")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@overrides_option
@click.option("--out", "out_dir", default="runs", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder in which the run folder is created.")
@reports_errors
def command(config: Path, overrides: tuple[str, ...], out_dir: Path) -> None:
    """Train one experiment and write its run folder.

    Example: gradexp run configs/srn_clip.yaml --set optimizer.lr=0.1 --out runs/
    """
    from gradexp.reporting import describe_summary
    from gradexp.runner import run as run_experiment

    result = run_experiment(load_config(config, overrides), out_dir, ProgressReporter())
    click.echo(describe_summary(result.run_dir, result.summary))
