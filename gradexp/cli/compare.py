"""`gradexp compare RUN_DIR...`: runs side by side, with the explosion diagnosed."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gradexp.cli import reports_errors


@click.command("compare")
@click.argument("run_dirs", nargs=-1, metavar="RUN_DIR...", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for compare.csv and compare.pdf [default: a new runs/compare-<UTC timestamp>/].")
@click.option("--metric", help="Dev/test metric to show (e.g. accuracy, loss) [default: each run's own].")
@click.option("--explode-at", type=click.FloatRange(min=0, min_open=True), default=100.0, show_default=True,
              help="Total gradient norm above which a step counts as an explosion (non-finite always does).")
@reports_errors
def command(run_dirs: tuple[Path, ...], out_dir: Path | None, metric: str | None, explode_at: float) -> None:
    """Compare runs side by side: which exploded, when, where, and which fix worked best.

    Prints a row per run: the config fields that differ between the runs, status, best dev and test
    metric, max and median pre-clip gradient norms, the first step whose total norm passed --explode-at
    (or was not finite) and the parameter that led, the fraction of steps clipping acted on, runtime.
    Writes the same table to compare.csv and the overlaid curves to compare.pdf.

    RUN_DIR is a run folder or a folder holding run folders (a sweep, runs/), in any mix. A path or
    run that cannot be read is reported on stderr and skipped. Exit status: 0 when every run was
    compared, 1 when some were skipped, 2 when nothing could be compared (or the output cannot be written).

    Example: gradexp compare runs/ --explode-at 100 --out runs/compare-srn
    """
    from gradexp.compare import build_table, format_table, gather_runs, output_folder, write_comparison

    gathered = gather_runs(run_dirs)
    for failure in gathered.failures:
        click.echo(f"error: {failure}", err=True)
    if not gathered.runs:
        sys.exit(2)
    table = build_table(gathered.runs, metric, explode_at)
    click.echo(format_table(table))
    csv_path, pdf_path = write_comparison(table, output_folder(out_dir))
    click.echo(f"wrote {csv_path} and {pdf_path}")
    sys.exit(1 if gathered.failures else 0)
