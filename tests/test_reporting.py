"""The end-of-run text: each gradient norm says which parameter it is, and a rare clip is not reported as none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradexp.recording.summary import RunSummary
from gradexp.reporting import describe_summary


def describe(summary_json: dict[str, Any]) -> str:
    """The text for a summary.json holding `summary_json`."""
    return describe_summary(Path("runs/x"), RunSummary.from_json(summary_json))


def summary(max_grad_norm: dict[str, float], plot_parameters: list[str]) -> dict[str, Any]:
    return {
        "status": "completed", "diverged": False, "steps": 10, "seconds": 1.0, "device": "cpu", "metric": "mse",
        "best_dev": {"step": 10, "mse": 1.0}, "test": {"mse": 1.0}, "test_model": "last",
        "max_grad_norm": max_grad_norm, "plot_parameters": plot_parameters, "clip_fraction": 0.0,
    }


def max_grad_norm_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("max grad norm:"))


def test_mlp_layers_are_told_apart_by_their_full_names() -> None:
    maxima = {"layers.0.weight": 4.0, "layers.0.bias": 3.0, "layers.1.weight": 2.0, "layers.1.bias": 1.0, "total": 5.0}
    text = describe(summary(maxima, ["layers.0.weight", "layers.1.weight"]))
    assert max_grad_norm_line(text) == "max grad norm: layers.0.weight 4, layers.1.weight 2, total 5"


def test_srn_parameters_keep_their_short_names() -> None:
    maxima = {"embedding.weight": 9.0, "rnn_model.W": 965.9, "rnn_model.U": 360.3, "rnn_model.b": 67.8,
              "classifier.weight": 7.0, "total": 1053.0}
    text = describe(summary(maxima, ["rnn_model.W", "rnn_model.U", "rnn_model.b"]))
    assert max_grad_norm_line(text) == "max grad norm: W 965.9, U 360.3, b 67.8, total 1053"


def clip_line(fraction: float) -> str:
    text = describe(summary({"total": 1.0}, []) | {"clip_fraction": fraction})
    return next(line for line in text.splitlines() if line.startswith("clipped in"))


def test_a_rare_clip_is_not_reported_as_never() -> None:
    # srn_zclip clips at 1 of its 250 steps: "0%" would read as ZClip never acting.
    assert [clip_line(f) for f in (0.0, 1 / 250, 0.5, 249 / 250, 1.0)] == [
        "clipped in 0% of steps", "clipped in <1% of steps", "clipped in 50% of steps", "clipped in >99% of steps",
        "clipped in 100% of steps"]


def test_a_diverged_run_without_a_test_metric_says_why() -> None:
    diverged = summary({"total": 1e15}, []) | {"status": "diverged", "diverged": True, "diverged_at_step": 8,
                                                "diverged_parameter": "layers.0.weight", "test": {"mse": None},
                                                "best_dev": None, "clip_fraction": None}
    lines = describe(diverged).splitlines()
    assert lines[0] == "status: diverged at step 8 (first non-finite: layers.0.weight)"
    assert "test mse: n/a (last model, which diverged)" in lines
    assert not any(line.startswith(("best dev", "clipped in")) for line in lines)
