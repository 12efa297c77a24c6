"""`gradexp export RUN_DIR... --tensorboard LOGDIR --mlflow URI`: runs opened in TensorBoard and MLflow.

The same options on `gradexp run` and `gradexp sweep` export each run they write.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import click

from gradexp.cli import reports_errors
from gradexp.errors import OptionError

if TYPE_CHECKING:
    from gradexp.export import ExportReport, Exporter


def export_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--tensorboard, --mlflow and --experiment, as `export`, `run` and `sweep` take them."""
    options = [
        click.option("--tensorboard", "tensorboard", metavar="LOGDIR", type=click.Path(path_type=Path),
                     help="Write each run's TensorBoard event files into LOGDIR/<run name>/ (an earlier export of "
                          "the run there is replaced); needs pip install 'gradexp[tensorboard]'."),
        click.option("--mlflow", "mlflow", metavar="TRACKING_URI",
                     help="Log each run as an MLflow run in this tracking store, e.g. sqlite:///mlflow.db (an earlier "
                          "export of the run there is replaced); needs pip install 'gradexp[mlflow]'."),
        click.option("--experiment", metavar="NAME",
                     help="With --mlflow: the MLflow experiment the runs go into [default: gradexp]."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def open_exporters(tensorboard: Optional[Path], mlflow: Optional[str], experiment: Optional[str]) -> list[Exporter]:
    """The exporters the options ask for, each checked (its package installed, its destination usable) before any
    work starts; none when neither option is given, and then nothing of them is imported."""
    if experiment is not None and mlflow is None:
        raise OptionError("--experiment", "names an MLflow experiment; it needs --mlflow TRACKING_URI")
    exporters: list[Exporter] = []
    if tensorboard is not None:
        from gradexp.export.tensorboard import TensorBoardExporter

        exporters.append(TensorBoardExporter(tensorboard))
    if mlflow is not None:
        from gradexp.export.mlflow import MlflowExporter

        exporters.append(MlflowExporter(mlflow, experiment))
    return exporters


def export_and_report(run_dirs: Sequence[Path], exporters: Sequence[Exporter],
                      echo: Callable[[str], None] = click.echo, name_runs: bool = True) -> ExportReport:
    """Export the runs: a line through `echo` (on stdout) for each run exported, naming where it went, and an
    `error:` line on stderr for each failure. Without `name_runs` (a sweep's, under the run's own line) the
    line leaves out the run's name and status."""
    from gradexp.export import export_folders

    report = export_folders(run_dirs, exporters)
    # export_folders hands each run to every exporter in turn, so a run's exports are neighbours.
    for _, group in itertools.groupby(report.exported, key=lambda exported: exported.run.folder):
        exports = list(group)
        run, places = exports[0].run, ", ".join(exported.where for exported in exports)
        echo((f"exported {run.name} ({run.status}) to " if name_runs else "  exported to ") + places)
    for failure in report.failures:
        click.echo(f"error: {failure}", err=True)
    return report


@click.command("export", short_help="Open runs in TensorBoard or MLflow: write them where those tools read.")
@click.argument("run_dirs", nargs=-1, metavar="RUN_DIR...", type=click.Path(path_type=Path))
@export_options
@reports_errors
def command(run_dirs: tuple[Path, ...], tensorboard: Optional[Path], mlflow: Optional[str],
            experiment: Optional[str]) -> None:
    """Export runs to TensorBoard event files and/or MLflow runs; the run folders stay as they are.

    TensorBoard (--tensorboard LOGDIR): every metrics.csv column as a scalar series by step
    (grad_norm/*, clipped_norm/*, loss, lr, ...), eval.csv as dev/* and test/*, summary.json's numbers as
    summary/*, the status as text, the time-gradient heatmap as an image, and the config as
    hyper-parameters for the HParams dashboard. Open it with: tensorboard --logdir LOGDIR

    MLflow (--mlflow TRACKING_URI): a run per run folder in the --experiment, with the config as params,
    the same series as metrics by step, status and gradexp version as tags and the run's files as
    artifacts. Open it with: mlflow ui --backend-store-uri TRACKING_URI

    Exporting a run again replaces the earlier export (its TensorBoard folder rewritten, its MLflow run,
    found by the gradexp.run_folder tag, replaced). RUN_DIR is a run folder or a folder holding run
    folders (a sweep, runs/), as `gradexp compare` takes them. A path or run that cannot be read (a
    corrupt metrics.csv) is reported on stderr and the others are exported. Exit status: 0 when every run
    was exported, 1 when some were not, 2 when none could be read.

    Example: gradexp export runs/ --tensorboard runs/tensorboard

    Example: gradexp export runs/sweep-srn_clip-20261130-101500 --mlflow sqlite:///mlflow.db --experiment srn-clip
    """
    if tensorboard is None and mlflow is None and experiment is None:
        raise OptionError("--tensorboard/--mlflow", "say where to export: --tensorboard LOGDIR, --mlflow TRACKING_URI "
                                                    "or both")
    report = export_and_report(run_dirs, open_exporters(tensorboard, mlflow, experiment))
    sys.exit(2 if not report.runs_read else 1 if report.failures else 0)
