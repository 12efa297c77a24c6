"""Short human-readable text about a finished run (what the CLI prints at the end)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


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
    test = summary.get("test")
    lines.append(f"test {metric}: {_number(test.get(metric)) if test else 'n/a'} ({summary['test_model']} model)")
    maxima = summary.get("max_grad_norm") or {}
    if maxima:
        shown = ", ".join(f"{name.split('.')[-1] if name != 'total' else name} {_number(value)}"
                          for name, value in maxima.items() if name in summary["plot_parameters"] or name == "total")
        lines.append(f"max grad norm: {shown}")
    if summary.get("clip_fraction") is not None:
        lines.append(f"clipped in {summary['clip_fraction']:.0%} of steps")
    lines.append(f"run folder: {run_dir}")
    return "\n".join(lines)
