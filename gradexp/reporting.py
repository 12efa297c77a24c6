"""Short human-readable text about a finished run (what the CLI prints at the end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradexp.plotting import short_parameter_name


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _share(fraction: float) -> str:
    """A whole percentage that never rounds a few clipped steps down to 0%, nor a few unclipped ones up to 100%."""
    if 0 < fraction < 0.005:
        return "<1%"
    if 0.995 <= fraction < 1:
        return ">99%"
    return f"{fraction:.0%}"


def describe_summary(run_dir: Path, summary: dict[str, Any]) -> str:
    metric = summary["metric"]
    if summary["diverged"]:
        status = f"diverged at step {summary['diverged_at_step']} (first non-finite: {summary['diverged_parameter']})"
    elif summary.get("early_stopped"):
        status = f"{summary['status']} (early stop after step {summary['steps']})"
    else:
        status = summary["status"]
    lines = [f"status: {status}", f"steps: {summary['steps']} in {summary['seconds']:.1f}s on {summary['device']}"]
    best = summary.get("best_dev")
    if best:
        lines.append(f"best dev {metric}: {_number(best.get(metric))} at step {best['step']}")
    test_value = (summary.get("test") or {}).get(metric)
    # A diverged model scores NaN, which summary.json holds as null.
    why_missing = ", which diverged" if test_value is None and summary["diverged"] else ""
    lines.append(f"test {metric}: {_number(test_value)} ({summary['test_model']} model{why_missing})")
    maxima = summary.get("max_grad_norm") or {}
    if maxima:
        shown_parameters = summary["plot_parameters"]
        # Short names only where they stay unique: W, U, b for the SRN, but layers.0.weight, layers.1.weight
        # for an MLP, whose weights all end in `weight`.
        shown = ", ".join(f"{short_parameter_name(name, shown_parameters) if name != 'total' else name} "
                          f"{_number(value)}"
                          for name, value in maxima.items() if name in shown_parameters or name == "total")
        lines.append(f"max grad norm: {shown}")
    if summary.get("clip_fraction") is not None:
        lines.append(f"clipped in {_share(summary['clip_fraction'])} of steps")
    lines.append(f"run folder: {run_dir}")
    return "\n".join(lines)
