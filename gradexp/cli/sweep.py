"""`gradexp sweep CONFIG --grid KEY=V1,V2,...`: train a grid of runs and compare them."""

from __future__ import annotations

from pathlib import Path

import click

from gradexp.cli import overrides_option, reports_errors


def describe_outcome(outcome, total: int) -> str:
    summary_path = outcome.run_dir / "summary.json" if outcome.run_dir else None
    text = f"[{outcome.point.index + 1}/{total}] {outcome.point.name}: {outcome.status}"
    if outcome.error:
        text += f" ({outcome.error})"
    elif summary_path is not None:
        from gradexp.sweep.table import read_summary

        summary = read_summary(outcome.run_dir)
        test, metric = summary.get("test") or {}, summary.get("metric")
        if summary.get("diverged"):
            text += f" at step {summary['diverged_at_step']}"
        if metric in test:
            text += f", test {metric} {test[metric]:.4g}"
    return text


@click.command("sweep")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--grid", "grid", multiple=True, metavar="SECTION.KEY=V1,V2,...",
              help="Values of one config key (repeatable; the runs are every combination). Values read as --set "
                   "reads them; clip.threshold=none means no clipping (clip.mode none).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train every grid point with this many seeds: train.seed, train.seed+1, ...")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs trained at once, each in its own process.")
@click.option("--out", "out_dir", default="runs", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder in which the sweep folder sweep-<config>-<UTC>/ is created.")
@click.option("--metric", default="test", show_default=True,
              help="sweep.csv column the sweep.pdf heatmap shows: test, best_dev, test_loss, final_loss, "
                   "clip_fraction, steps, diverged_at_step, seconds or max_grad_norm/<parameter>.")
@click.option("--vectorize", is_flag=True,
              help="Train the points that share model shapes together, as one batched model in one process.")
@overrides_option
@reports_errors
def command(config: Path, grid: tuple[str, ...], seeds: int, jobs: int, out_dir: Path, metric: str,
            vectorize: bool, overrides: tuple[str, ...]) -> None:
    """Train CONFIG once per combination of the --grid values, each run in its own folder.

    Every point's config is checked before any run starts; a point whose values do not fit, or
    whose run fails, is marked failed in sweep.csv and the others go on. The sweep folder gets
    sweep.csv (a row per run: grid values, seed, status, best dev and test metric, max gradient
    norms), sweep.pdf (the --metric heatmap over the first two grid axes, and every run's norm
    curve) and sweep.yaml (how it was called); then the runs' comparison table is printed.

    Example: gradexp sweep configs/srn_clip.yaml --grid optimizer.lr=0.05,0.1,0.2
    --grid clip.threshold=1,5,none --jobs 2
    """
    from gradexp.sweep import plan_sweep, run_sweep

    plan = plan_sweep(config, overrides, grid, seeds, metric)
    total = len(plan.points)
    click.echo(f"sweep of {total} runs ({len(plan.runnable)} valid) from {config}")
    result = run_sweep(plan, out_dir, jobs, vectorize,
                       finished=lambda outcome: click.echo(describe_outcome(outcome, total)))
    click.echo(f"wrote {result.folder / 'sweep.csv'} and {result.folder / 'sweep.pdf'}")
    try:
        from gradexp.compare import build_table, format_table, gather_runs
    except ImportError:
        return
    gathered = gather_runs([result.folder])
    if gathered.runs:
        click.echo(format_table(build_table(gathered.runs)))
