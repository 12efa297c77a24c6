"""`gradexp compare RUN_DIR...`: runs side by side, with the explosion diagnosed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from gradexp.cli import reports_errors


@click.command("compare", short_help="Runs side by side: which exploded, when, and which fix worked.")
@click.argument("run_dirs", nargs=-1, metavar="RUN_DIR...", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for compare.csv and compare.pdf [default: a new runs/compare-<UTC timestamp>/].")
@click.option("--metric", help="Dev/test metric to show (e.g. accuracy, loss) [default: each run's own].")
@click.option("--explode-at", type=click.FloatRange(min=0, min_open=True), default=100.0, show_default=True,
              help="Total gradient norm above which a step counts as an explosion (non-finite always does).")
@click.option("--wide", "columns", flag_value="wide",
              help="Print every column however wide (the same as --columns wide).")
@click.option("--columns", "columns", metavar="compact|wide|NAME,...",
              help="compact: fit the terminal; wide: every column; else the columns to print, comma-separated, "
                   "each named by its compare.csv or --wide header, e.g. \"run,clip.mode,dev loss,W med\" "
                   "[default: compact].")
@reports_errors
def command(run_dirs: tuple[Path, ...], out_dir: Path | None, metric: str | None, explode_at: float,
            columns: str | None) -> None:
    """Compare runs side by side: which exploded, when, where, and which fix worked best.

    Prints a row per run, as wide as the terminal (COLUMNS; 100 into a pipe or file): the run (its
    folder name without the start time; a sweep point's number), the config fields that differ between
    the runs by their last part (optimizer.lr as lr; clip.mode as clip), status, best dev and test
    metric, best dev loss, max pre-clip gradient norm of each plotted parameter and of all together, the
    first step whose total norm passed --explode-at (or was not finite), the share of steps clipping
    acted on, and runtime. What does not fit is left out, least important first (fields only some runs
    set, time, per-parameter norms, dev metric, dev loss, clipped ...), and a last line names it.

    --wide prints every column: the fields' full keys, dev and test loss, median norms and the parameter
    whose norm exploded first (by). --columns prints the columns named, in that order. compare.csv
    always holds every column; compare.pdf overlays the runs' curves.

    RUN_DIR is a run folder or a folder holding run folders (a sweep, runs/), in any mix. A path or
    run that cannot be read is reported on stderr and skipped. Exit status: 0 when every run was
    compared, 1 when some were skipped, 2 when nothing could be compared (or the output cannot be written).

    Example: gradexp compare runs/ --explode-at 100 --out runs/compare-srn

    Example: gradexp compare runs/ --columns "run,clip.mode,status,dev loss,test accuracy,W med"
    """
    from gradexp.compare import (COMPACT, DEFAULT_WIDTH, WIDE, build_table, format_table, gather_runs, output_folder,
                                 write_comparison)

    gathered = gather_runs(run_dirs)
    for failure in gathered.failures:
        click.echo(f"error: {failure}", err=True)
    if not gathered.runs:
        sys.exit(2)
    table = build_table(gathered.runs, metric, explode_at)
    layout = COMPACT if columns is None else columns
    chosen = layout if layout in (COMPACT, WIDE) else [name.strip() for name in layout.split(",") if name.strip()]
    # Where the terminal's width cannot be read (output into a pipe or a file), DEFAULT_WIDTH.
    click.echo(format_table(table, chosen, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns))
    csv_path, pdf_path = write_comparison(table, output_folder(out_dir))
    click.echo(f"wrote {csv_path}\nwrote {pdf_path}")
    sys.exit(1 if gathered.failures else 0)
