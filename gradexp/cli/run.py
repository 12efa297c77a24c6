"""`gradexp run CONFIG`: train one experiment into a new run folder; `gradexp run --resume RUN_DIR`: finish a stopped one."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gradexp.cli import overrides_option, reports_errors
from gradexp.cli.export import export_and_report, export_options, open_exporters
from gradexp.errors import OptionError

if TYPE_CHECKING:
    from gradexp.recording.summary import RunSummary


class ProgressReporter:
    """A progress bar on stderr while a run trains, and the latest dev evaluation beside it.

    Only on a terminal: where stderr is a file or a pipe, click would print the bar's bare label once, a
    line that tells a log reader nothing.
    """

    def __init__(self) -> None:
        self._bar: Any = None
        self._dev = ""

    def run_started(self, run_dir: Path, total_steps: int) -> None:
        if not sys.stderr.isatty():
            return
        self._bar = click.progressbar(length=total_steps, label="training", file=sys.stderr,
                                      item_show_func=lambda _: self._dev)
        self._bar.__enter__()

    def step_done(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def evaluated(self, step: int, dev: dict[str, float]) -> None:
        self._dev = " ".join(f"dev {name} {value:.4g}" for name, value in dev.items())

    def run_finished(self, summary: RunSummary) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@click.command("run", short_help="Train one experiment into a new run folder (or --resume one).")
@click.argument("config", required=False, type=click.Path(path_type=Path))
@overrides_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path),
              help="Folder in which the run folder is created [default: runs].")
@click.option("--resume", "resume_dir", metavar="RUN_DIR", type=click.Path(path_type=Path),
              help="Continue the interrupted or crashed run in RUN_DIR from its last checkpoint, in that folder "
                   "(instead of CONFIG; takes no --set or --out).")
@export_options
@reports_errors
def command(config: Path | None, overrides: tuple[str, ...], out_dir: Path | None, resume_dir: Path | None,
            tensorboard: Path | None, mlflow: str | None, experiment: str | None) -> None:
    """Train one experiment and write its run folder.

    Ctrl-C (or SIGTERM) stops after the current step with everything saved (exit code 130, or 143
    for SIGTERM); --resume continues the run exactly where it stopped.

    Example: gradexp run configs/srn_clip.yaml --set optimizer.lr=0.1 --out runs/

    Example: gradexp run --resume runs/srn_clip-20261123-101500

    Example: gradexp run configs/srn_clip.yaml --tensorboard runs/tensorboard --mlflow sqlite:///mlflow.db
    """
    from gradexp.drawing import FigureWorkers

    if (config is None) == (resume_dir is None):
        raise OptionError("CONFIG", "give a CONFIG to start a run, or --resume RUN_DIR to continue one (not both)")
    if resume_dir is not None and (overrides or out_dir is not None):
        raise OptionError("--resume", "continues a run with the config and folder it started with; "
                          "it takes no --set or --out")
    # Checked before training: a missing package or an unusable store must not cost a run.
    exporters = open_exporters(tensorboard, mlflow, experiment)
    # The figures' process starts first, before torch is imported here, and imports the plotting stack on the
    # other core meanwhile (about half a second of a short run).
    with FigureWorkers(1, start_now=True) as figures:
        from gradexp import runner
        from gradexp.config.loading import load_config
        from gradexp.reporting import describe_summary

        if resume_dir is not None:
            result = runner.resume(resume_dir, ProgressReporter(), figures)
        else:
            result = runner.run(load_config(config, overrides), out_dir or Path("runs"), ProgressReporter(), figures)
    click.echo(describe_summary(result.run_dir, result.summary))
    exported = export_and_report([result.run_dir], exporters) if exporters else None
    stopped_by = result.summary.interrupted_by
    if stopped_by is not None:
        click.echo(f"resume with: gradexp run --resume {result.run_dir}")
        # The shell's convention for a process ended by a signal: 128 + its number (130 for SIGINT, 143 for SIGTERM).
        sys.exit(128 + signal.Signals[stopped_by].value)
    if exported is not None and exported.failures:
        sys.exit(1)
