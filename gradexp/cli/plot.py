"""`gradexp plot METRICS_CSV`: re-plot the gradient norms of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from gradexp.cli import reports_errors


@click.command("plot", short_help="Plot the gradient norms of a metrics.csv (or a time_grads.csv) again.")
@click.argument("metrics_csv", metavar="CSV", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Figure to write; the suffix picks the format: .pdf, .png or .svg "
                   "[default: grad_norms-replot.pdf, or time_grads-replot.pdf, beside the CSV].")
@click.option("--params", help="Comma-separated parameters to plot, full names or last component (W,U,b) "
                                "[default: the run's plotted parameters].")
@click.option("--steps", type=click.IntRange(min=1), help="Show only the first N steps in the top panel "
                                                           "[default: the run's plot.steps].")
@click.option("--log-y/--linear-y", "log_y", default=None,
              help="Logarithmic or linear y axis in the top panel [default: the run's plot.log_y].")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@reports_errors
def command(metrics_csv: Path, output: Optional[Path], params: Optional[str], steps: Optional[int],
            log_y: Optional[bool], force: bool) -> None:
    """Re-plot the gradient norms of any metrics.csv, with the run's own plot and clip settings
    (config.yaml and summary.json beside the CSV) unless an option overrides them; or the gradients
    through time of a time_grads.csv (as time_grads.pdf), or of an LSTM's cell_grads.csv (as cell_grads.pdf);
    --params, --steps and --log-y are for a metrics.csv.

    Never replaces an existing file (the run's own grad_norms.pdf included) without --force.

    Example: gradexp plot runs/srn_explode-20261123-101500/metrics.csv --params W,U,b --steps 40 -o explode40.png

    Example: gradexp plot runs/srn_explode-20261123-101500/time_grads.csv -o where.png
    """
    from gradexp.plotting.runs import replot

    wanted = [name.strip() for name in params.split(",") if name.strip()] if params else None
    written = replot(metrics_csv, output, wanted, steps, log_y, force)
    click.echo(f"wrote {written}")
