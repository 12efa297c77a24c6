"""`gradexp compare RUN_DIR...`: runs side by side, with the explosion diagnosed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from gradexp.cli import reports_errors
from gradexp.errors import OptionError


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
@click.option("--group-by", metavar="FIELD,...",
              help="Group the runs by these config fields [default: every field that differs between the runs but "
                   "train.seed: runs that differ only in their seed form a group].")
@click.option("--no-group", is_flag=True, help="A row per run, never groups.")
@click.option("--ci", "interval", type=click.Choice(["t", "bootstrap"]), default="t", show_default=True,
              help="Confidence interval of a group's mean: Student t, or a percentile bootstrap (10,000 resamples, "
                   "seed 0).")
@click.option("--baseline", metavar="GROUP",
              help="The group the others are tested against: its number or its label [default: group 1].")
@click.option("--test", "family", type=click.Choice(["welch", "mannwhitney"]), default="welch", show_default=True,
              help="welch: Welch's t-test (groups run on the same seeds: the paired t-test); mannwhitney: the "
                   "Mann-Whitney U test (paired: the Wilcoxon signed-rank test).")
@click.option("--stats", "statistics", metavar="COLUMN,...",
              help="Quantities summarised per group, by compare.csv or printed name; the first is the one tested "
                   "against the baseline [default: test metric, dev metric, final loss, first explosion, clipped, "
                   "total max].")
@click.option("--x", "x_field", metavar="FIELD",
              help="Add to compare.pdf the tested quantity's group means (95% CI bars) against this numeric config "
                   "field, one line per setting of the other fields (e.g. --x data.length).")
@reports_errors
def command(run_dirs: tuple[Path, ...], out_dir: Path | None, metric: str | None, explode_at: float,
            columns: str | None, group_by: str | None, no_group: bool, interval: str, baseline: str | None,
            family: str, statistics: str | None, x_field: str | None) -> None:
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

    Runs whose configs differ only in train.seed form a group (--group-by chooses the fields): when a group
    holds two runs or more, the groups are printed instead, each with n, missing values, mean ± sd and
    the 95% CI of the mean of each quantity, then every group against the baseline (group 1, or
    --baseline) on the test metric: the difference of means with its CI, the test (paired by seed when
    the groups ran the same seeds), its p-value (Holm-adjusted for more than two groups) and a verdict;
    for two groups, the seeds per group that would detect the observed difference with 80% power.
    compare_groups.csv holds the same, and compare.pdf each group's median curves with quartile bands.

    RUN_DIR is a run folder or a folder holding run folders (a sweep, runs/), in any mix. A path or
    run that cannot be read is reported on stderr and skipped. Exit status: 0 when every run was
    compared, 1 when some were skipped, 2 when nothing could be compared (or the output cannot be written).

    Example: gradexp compare runs/ --explode-at 100 --out runs/compare-srn

    Example: gradexp compare runs/ --columns "run,clip.mode,status,dev loss,test accuracy,W med"

    Example: gradexp compare runs/sweep-srn_clip-20261130-101500 --baseline "clip=none" --test mannwhitney
    """
    from gradexp.compare import (COMPACT, DEFAULT_WIDTH, WIDE, build_table, format_groups, format_table, gather_runs,
                                 grouped_comparison, output_folder, write_comparison)
    from gradexp.compare.group_figure import check_x_field

    gathered = gather_runs(run_dirs)
    for failure in gathered.failures:
        click.echo(f"error: {failure}", err=True)
    if not gathered.runs:
        sys.exit(2)
    table = build_table(gathered.runs, metric, explode_at)
    grouped = None
    if no_group:
        context = click.get_current_context()
        given = [f"--{name.replace('_', '-')}" for name in ("group_by", "baseline", "statistics", "x_field",
                                                              "interval", "family")
                 if context.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
        if given:
            option = {"--statistics": "--stats", "--x-field": "--x", "--interval": "--ci", "--family": "--test"}
            raise OptionError(option.get(given[0], given[0]), "is for groups of runs; it cannot go with --no-group")
    else:
        grouped = grouped_comparison(table, split_names(group_by), split_names(statistics), interval, baseline, family)
        if x_field is not None:
            check_x_field(grouped, x_field)
        # Groups of one run each say nothing a row per run does not, unless asked for.
        elif not grouped.repeated and group_by is None and baseline is None and statistics is None:
            grouped = None
    # Where the terminal's width cannot be read (output into a pipe or a file), DEFAULT_WIDTH.
    width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    if grouped is not None:
        click.echo(format_groups(grouped, width))
    else:
        layout = COMPACT if columns is None else columns
        click.echo(format_table(table, layout if layout in (COMPACT, WIDE) else split_names(layout), width))
    for path in write_comparison(table, output_folder(out_dir), grouped, x_field):
        click.echo(f"wrote {path}")
    sys.exit(1 if gathered.failures else 0)


def split_names(text: str | None) -> list[str] | None:
    """NAME,NAME,... as a list (None for None)."""
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]
