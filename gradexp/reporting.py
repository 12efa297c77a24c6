"""Short human-readable text about a finished run (what the CLI prints at the end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradexp.recording.layout import TOTAL, short_parameter_name
from gradexp.recording.summary import RunSummary


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _share(fraction: float) -> str:
    """A whole percentage that never rounds a few clipped steps down to 0%, nor a few unclipped ones up to 100%."""
    if 0 < fraction < 0.005:
        return "<1%"
    if 0.995 <= fraction < 1:
        return ">99%"
    return f"{fraction:.0%}"


def describe_summary(run_dir: Path, summary: RunSummary) -> str:
    metric = summary.metric
    if summary.diverged:
        status = f"diverged at step {summary.diverged_at_step} (first non-finite: {summary.diverged_parameter})"
    elif summary.early_stopped:
        status = f"{summary.status} (early stop after step {summary.steps})"
    else:
        status = summary.status
    lines = [f"status: {status}", f"steps: {summary.steps} in {summary.seconds:.1f}s on {summary.device}"]
    if summary.best_dev:
        lines.append(f"best dev {metric}: {_number(summary.best_dev_value)} at step {summary.best_dev['step']}")
    # A diverged model scores NaN, which summary.json holds as null.
    why_missing = ", which diverged" if summary.test_value is None and summary.diverged else ""
    lines.append(f"test {metric}: {_number(summary.test_value)} ({summary.test_model} model{why_missing})")
    if summary.max_grad_norm:
        shown_parameters = summary.plot_parameters
        # Short names only where they stay unique: W, U, b for the SRN, but layers.0.weight, layers.1.weight
        # for an MLP, whose weights all end in `weight`.
        shown = ", ".join(f"{short_parameter_name(name, shown_parameters) if name != TOTAL else name} "
                          f"{_number(value)}"
                          for name, value in summary.max_grad_norm.items() if name in shown_parameters or name == TOTAL)
        lines.append(f"max grad norm: {shown}")
    if summary.clip_fraction is not None:
        lines.append(f"clipped in {_share(summary.clip_fraction)} of steps")
    lines.append(f"run folder: {run_dir}")
    return "\n".join(lines)
