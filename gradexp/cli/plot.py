"""`gradexp plot METRICS_CSV`: re-plot the gradient norms of a run."""

from __future__ import annotations

from pathlib import Path

import click

from gradexp.cli import overrides_option, reports_errors


@click.command("plot")
@click.argument("metrics_csv", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="PDF to write [default: grad_norms.pdf beside the CSV].")
@click.option("--params", help="Comma-separated parameters to plot, full names or last component (W,U,b).")
@click.option("--steps", type=click.IntRange(min=1), help="Plot only the first N steps.")
@click.option("--log-y", is_flag=True, help="Logarithmic y axis.")
@reports_errors
def command(metrics_csv: Path, output: Path | None, params: str | None, steps: int | None, log_y: bool) -> None:
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
