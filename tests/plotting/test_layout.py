"""Figures reused once saved (plotting.layout): a figure drawn on a reused figure is the same file, byte for byte,
as one drawn on a new figure, whatever was drawn on it before."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from gradexp.compare.table import build_table
from gradexp.compare.figure import comparison_figure
from gradexp.plotting.grad_flow import grad_flow_figure
from gradexp.plotting.grad_norms import grad_norms_figure
from gradexp.plotting.layout import forget_released_figures
from gradexp.plotting.loss import loss_figure
from gradexp.plotting.output import save_figure
from gradexp.plotting.time_grads import time_grads_figure
from gradexp.recording.folder import RunFolder
from tests.plotting.test_plotting import PARAMETERS, norms_frame

FIXTURES = Path(__file__).parents[1] / "fixtures" / "run_folders_da2445e"
EVALUATIONS = pd.DataFrame({"step": [20, 40, 60, 60], "epoch": [2, 4, 6, 6], "split": ["dev", "dev", "dev", "test"],
                            "loss": [3.0, 2.0, 1.5, 1.6], "accuracy": [0.2, 0.4, 0.5, 0.45]})
REGRESSION_EVALUATIONS = EVALUATIONS.drop(columns="accuracy").assign(mse=[3.0, 2.0, 1.5, 1.6])
LAYERS = [f"layers.{index}.weight" for index in range(4)]
GRAD_FLOW = pd.DataFrame({"step": np.arange(1, 41), **{f"grad_norm/{layer}": 10.0 ** (index - 4 + np.arange(40) / 40)
                                                        for index, layer in enumerate(LAYERS)}}
                         ).assign(depth_ratio=lambda frame: frame[f"grad_norm/{LAYERS[0]}"]
                                  / frame[f"grad_norm/{LAYERS[-1]}"])
TIME_GRADIENTS = pd.DataFrame({"step": np.arange(1, 31), **{f"t{t}": 2.0 ** (t - np.arange(1, 31) / 5)
                                                             for t in range(1, 7)}})

# Every kind of panel the run figures draw: linear and log axes, clipped or not, fixed and adaptive thresholds,
# dips below the log floor, a diverged run, a long smoothed run, a twin metric axis or none, a log loss axis.
FIGURES: dict[str, Callable] = {
    "norms, clipped, fixed threshold": lambda: grad_norms_figure(
        norms_frame(clipped=True), PARAMETERS, steps=20, clip={"mode": "norm", "threshold": 5.0}),
    "norms, log, dips, diverged": lambda: grad_norms_figure(
        norms_frame(dip_at=(5, 9), diverge=True), PARAMETERS, log_y=True),
    "norms, global threshold": lambda: grad_norms_figure(
        norms_frame(clipped=True), PARAMETERS, steps=30, clip={"mode": "global_norm", "threshold": 5.0}),
    "norms, adaptive threshold": lambda: grad_norms_figure(
        norms_frame(clipped=True, thresholds=list(np.linspace(2, 8, 60))), PARAMETERS[:2],
        clip={"mode": "autoclip", "percentile": 10}),
    "norms, 1500 steps smoothed": lambda: grad_norms_figure(norms_frame(steps=1500), PARAMETERS, steps=100),
    "loss, accuracy on a twin axis": lambda: loss_figure(norms_frame(), EVALUATIONS, "accuracy", "run", "sum"),
    "loss, regression": lambda: loss_figure(norms_frame(), REGRESSION_EVALUATIONS, "mse", "run", "mean"),
    "loss, log axis, no evaluation": lambda: loss_figure(
        norms_frame(steps=4).assign(loss=[1.0, 1e5, 1e12, 1e20]), None, None),
    "loss, diverged": lambda: loss_figure(norms_frame(diverge=True), EVALUATIONS, "accuracy"),
    "time gradients, with sigma": lambda: time_grads_figure(TIME_GRADIENTS, norms_frame().assign(
        **{"sigma_max/rnn_model.U": np.linspace(0.5, 3.0, 60)})),
    "time gradients, zeros, no sigma": lambda: time_grads_figure(TIME_GRADIENTS.assign(t1=0.0), None, "run"),
    "grad flow": lambda: grad_flow_figure(GRAD_FLOW, LAYERS, "stack"),
    "compare, two fixture runs": lambda: comparison_figure(build_table(
        [RunFolder.read(folder) for folder in sorted(FIXTURES.iterdir())])),
}


def draw(names: list[str], folder: Path, fresh: bool) -> tuple[dict[str, bytes], list[int]]:
    """Each figure written to a PDF; with `fresh`, none drawn on a reused figure. Also the figures' ids (all of
    them kept alive, so no two figures share an id)."""
    written, figures = {}, []
    for name in names:
        if fresh:
            forget_released_figures()
        figure = FIGURES[name]()
        figures.append(figure)
        path = folder / f"{len(written)}.pdf"
        save_figure(figure, path)
        written[name] = path.read_bytes()
    return written, [id(figure) for figure in figures]


@pytest.fixture(scope="module")
def fresh_bytes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Each figure's PDF drawn on a new figure (the same in any order)."""
    fresh, _ = draw(list(FIGURES), tmp_path_factory.mktemp("fresh"), fresh=True)
    forget_released_figures()
    return fresh


@pytest.mark.parametrize("order", ["as listed", "reversed"])
def test_a_reused_figure_gives_the_bytes_of_a_new_one(tmp_path: Path, order: str,
                                                      fresh_bytes: dict[str, bytes]) -> None:
    names = list(FIGURES) if order == "as listed" else list(reversed(FIGURES))
    names = names + names  # every figure also drawn on the one it left behind
    (tmp_path / "reused").mkdir()
    forget_released_figures()
    reused, figures = draw(names, tmp_path / "reused", fresh=False)
    assert len(set(figures)) < len(figures) - len(FIGURES) // 2  # figures were reused, and often
    assert [name for name in FIGURES if reused[name] != fresh_bytes[name]] == []
