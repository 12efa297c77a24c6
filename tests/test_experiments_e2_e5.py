"""E2-E5 from their shipped configs: the settings the articles give, and (slow) the behaviour the articles show.

The slow tests train each shipped config once through `gradexp.runner.run` and read the run folder back,
checking the issue's done-when targets (numbers are from the seeded CPU runs; see the configs' comments).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gradexp.config.loading import load_config
from gradexp.gradcheck import check_config
from gradexp.runner import run
from tests.conftest import CONFIGS

E2_CLIPS = {
    "mlp_regression_explode": ("none", None),
    "mlp_regression_clipnorm": ("norm", 1.0),
    "mlp_regression_clipvalue": ("value", 5.0),
    "mlp_regression_global": ("global_norm", 1.0),
}
SHIPPED = [*E2_CLIPS, "mlp_random_adam", "digits_global15", "mnist_global15", "deep_sigmoid", "deep_sigmoid_xavier",
           "deep_sigmoid_batchnorm"]


@pytest.mark.parametrize("name", SHIPPED)
def test_config_opens_with_what_it_reproduces_and_its_command(name: str) -> None:
    lines = (CONFIGS / f"{name}.yaml").read_text().splitlines()
    header = [line for line in lines[:12] if line.startswith("#")]
    assert header[0].startswith("# E") and "(seed 00" in header[0]
    assert any(f"gradexp run configs/{name}.yaml" in line for line in header)


@pytest.mark.parametrize("name", E2_CLIPS)
def test_e2_settings_are_the_articles(name: str) -> None:
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.data.name == "regression" and config.data.params == {
        "n_samples": 1000, "n_features": 20, "noise": 0.1, "random_state": 1, "train_size": 500}
    assert config.model.params["hidden"] == [25] and config.model.params["activation"] == "relu"
    assert config.model.params["init"] == "he_uniform" and config.model.params["output_activation"] == "none"
    assert (config.optimizer.name, config.optimizer.params["lr"], config.optimizer.params["momentum"]) == \
        ("sgd", 0.01, 0.9)
    assert config.loss.name == "mse"
    assert (config.train.epochs, config.train.batch_size, config.train.shuffle, config.train.keep) == \
        (100, 32, True, "last")
    mode, threshold = E2_CLIPS[name]
    assert config.clip.name == mode and config.clip.params.get("threshold") == threshold


def test_e3_e4_e5_settings_are_the_articles() -> None:
    adam = load_config(CONFIGS / "mlp_random_adam.yaml")
    assert adam.model.params["hidden"] == [50] and adam.data.params["n_features"] == 10
    assert (adam.optimizer.name, adam.optimizer.params["lr"]) == ("adam", 0.001)
    assert (adam.clip.name, adam.clip.params["threshold"], adam.train.epochs) == ("global_norm", 1.0, 100)
    for name in ("digits_global15", "mnist_global15"):
        e4 = load_config(CONFIGS / f"{name}.yaml")
        assert e4.model.params["hidden"] == [256, 128] and e4.model.params["init"] == "truncated_normal"
        assert e4.model.params["init_std"] == 0.1 and e4.loss.name == "mse_onehot"
        assert (e4.optimizer.name, e4.optimizer.params["lr"], e4.train.batch_size) == ("sgd", 0.01, 128)
        assert (e4.clip.name, e4.clip.params["threshold"]) == ("global_norm", 15.0)
    assert load_config(CONFIGS / "mnist_global15.yaml").data.params["scale"] == 50.0
    assert load_config(CONFIGS / "digits_global15.yaml").data.params["scale"] == pytest.approx(16 * 50 / 255, rel=1e-3)
    for name, init, batch_norm in [("deep_sigmoid", "default", False), ("deep_sigmoid_xavier", "xavier_uniform", False),
                                   ("deep_sigmoid_batchnorm", "default", True)]:
        e5 = load_config(CONFIGS / f"{name}.yaml")
        assert e5.data.params["n_features"] == 10 and e5.data.params["n_classes"] == 8
        assert e5.model.params["hidden"] == [5, 8, 8, 8, 8] and e5.model.params["activation"] == "sigmoid"
        assert (e5.model.params["init"], e5.model.params["batch_norm"], e5.train.dtype) == (init, batch_norm, "float64")


def run_shipped(name: str, tmp_path: Path) -> tuple[Path, dict[str, Any], pd.DataFrame]:
    result = run(load_config(CONFIGS / f"{name}.yaml"), tmp_path)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    return result.run_dir, summary, pd.read_csv(result.run_dir / "metrics.csv")


@pytest.mark.slow
def test_e2_without_clipping_diverges_in_its_first_epoch(tmp_path: Path) -> None:
    run_dir, summary, metrics = run_shipped("mlp_regression_explode", tmp_path)
    assert summary["status"] == "diverged" and summary["diverged_at_step"] <= 16  # 500 rows / 32: 16 steps an epoch
    assert summary["epochs"] == 1
    assert {"config.yaml", "metrics.csv", "eval.csv", "summary.json", "grad_norms.pdf", "loss.pdf"} <= \
        {path.name for path in run_dir.iterdir()}
    assert len(metrics) == summary["diverged_at_step"] and metrics["grad_norm/total"].iloc[0] > 100


@pytest.mark.slow
@pytest.mark.parametrize("name, settles_by_epoch", [("mlp_regression_clipnorm", 20), ("mlp_regression_global", 60)])
def test_e2_norm_clipping_brings_the_loss_from_20000_to_below_100(tmp_path: Path, name: str,
                                                                   settles_by_epoch: int) -> None:
    _, summary, metrics = run_shipped(name, tmp_path)
    per_epoch = metrics.groupby("epoch")["loss"].mean()
    assert summary["status"] == "completed" and len(per_epoch) == 100
    assert per_epoch.iloc[0] > 20_000 and per_epoch.iloc[-1] < 100
    assert per_epoch[per_epoch < 100].index.min() <= settles_by_epoch
    assert summary["test"]["mse"] < 30
    assert metrics["clipped_norm/total" if "global" in name else "clipped_norm/layers.0.weight"].max() <= 1 + 1e-6


@pytest.mark.slow
def test_e2_value_clipping_learns_without_nan(tmp_path: Path) -> None:
    _, summary, metrics = run_shipped("mlp_regression_clipvalue", tmp_path)
    per_epoch = metrics.groupby("epoch")["loss"].mean()
    assert summary["status"] == "completed" and metrics["loss"].notna().all()
    assert per_epoch.iloc[-1] < per_epoch.iloc[0] / 50 and summary["best_dev"]["mse"] < 100


@pytest.mark.slow
def test_e3_loss_hovers_around_the_noise_variance(tmp_path: Path) -> None:
    _, summary, metrics = run_shipped("mlp_random_adam", tmp_path)
    assert summary["steps"] == 100 and list(metrics["epoch"]) == list(range(1, 101))
    assert 0.85 < metrics["loss"].mean() < 1.15 and 0.85 < summary["test"]["mse"] < 1.15
    assert metrics["clipped"].any() and metrics["clipped_norm/total"].max() <= 1 + 1e-6


@pytest.mark.slow
def test_e4_digits_learns_under_the_global_clip(tmp_path: Path) -> None:
    _, summary, metrics = run_shipped("digits_global15", tmp_path)
    tensors = [f"layers.{i}.{kind}" for i in range(3) for kind in ("weight", "bias")]
    assert [c for c in metrics.columns if c.startswith("grad_norm/")] == [f"grad_norm/{t}" for t in tensors] + \
        ["grad_norm/total"]
    assert all(f"clipped_norm/{t}" in metrics.columns for t in tensors)
    assert summary["test"]["accuracy"] > 0.9
    assert metrics["clipped_norm/total"].max() <= 15 + 1e-6


@pytest.mark.slow
def test_e5_first_layer_gradients_vanish_and_the_remedies_narrow_the_gap(tmp_path: Path) -> None:
    def gap(name: str) -> float:
        medians = run_shipped(name, tmp_path)[1]["median_grad_norm"]
        return medians["layers.5.weight"] / medians["layers.0.weight"]

    plain, xavier, batch_norm = gap("deep_sigmoid"), gap("deep_sigmoid_xavier"), gap("deep_sigmoid_batchnorm")
    assert plain > 1000  # orders of magnitude
    assert xavier < plain / 5 and batch_norm < xavier / 10 and batch_norm < 10


@pytest.mark.slow
@pytest.mark.parametrize("name", ["srn_explode", "mlp_regression_explode", "digits_global15", "deep_sigmoid",
                                  "deep_sigmoid_xavier", "deep_sigmoid_batchnorm"])
def test_gradcheck_passes_on_the_shipped_models(name: str) -> None:
    result = check_config(load_config(CONFIGS / f"{name}.yaml"))
    assert result.passed, result.worst
