"""The shared runner on tiny configs: files written, norms recorded and clipped, divergence, reproducibility."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from gradexp.config.loading import load_config
from gradexp.recording.layout import MetricsColumns
from gradexp.runner import run
from tests.conftest import CONFIGS, TINY_SRN

SRN_PARAMETERS = ["embedding.weight", "rnn_model.W", "rnn_model.U", "rnn_model.b", "classifier.weight",
                  "classifier.bias"]
RUN_FILES = {"config.yaml", "metrics.csv", "eval.csv", "summary.json", "grad_norms.pdf", "loss.pdf", "best.pt",
             "time_grads.csv", "time_grads.pdf"}


def run_tiny(write_config, tmp_path: Path, overrides=(), **changes):
    return run(load_config(write_config(**changes), overrides), tmp_path / "runs")


def test_run_folder_holds_every_output(write_config, tmp_path: Path) -> None:
    result = run_tiny(write_config, tmp_path, record={"update_ratio": True})
    assert result.run_dir.parent == tmp_path / "runs" and result.run_dir.name.startswith("tiny-")
    assert {p.name for p in result.run_dir.iterdir()} == RUN_FILES
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    assert list(metrics.columns) == MetricsColumns.of(SRN_PARAMETERS, ["rnn_model.U"], update_ratios=True).header
    assert list(metrics.columns)[-7:] == ["sigma_max/rnn_model.U"] + [f"update_ratio/{p}" for p in SRN_PARAMETERS]
    assert list(metrics["step"]) == list(range(1, 11))  # 300 examples / 64 = 5 steps an epoch, 2 epochs
    assert list(metrics["epoch"]) == [1] * 5 + [2] * 5
    evaluations = pd.read_csv(result.run_dir / "eval.csv")
    assert list(evaluations["step"]) == [4, 8, 10, 10] and list(evaluations["split"]) == ["dev"] * 3 + ["test"]
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 10 and not summary["diverged"]
    assert summary["best_dev"]["accuracy"] == evaluations[evaluations.split == "dev"]["accuracy"].max()
    assert set(summary["test"]) == {"loss", "accuracy"} and summary["device"] == "cpu"
    assert summary["versions"]["torch"] == torch.__version__
    assert summary["max_grad_norm"]["rnn_model.W"] == pytest.approx(metrics["grad_norm/rnn_model.W"].max())
    resolved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert resolved["optimizer"]["lr"] == 0.05 and resolved["train"]["epochs"] == 2
    checkpoint = torch.load(result.run_dir / "best.pt")
    assert checkpoint["step"] == summary["best_dev"]["step"]
    for pdf in ("grad_norms.pdf", "loss.pdf"):
        assert (result.run_dir / pdf).read_bytes().startswith(b"%PDF")


def test_recorded_norms_are_the_true_gradient_norms(write_config, tmp_path: Path) -> None:
    """Rebuild the model, replay the first step by hand and compare every recorded norm."""
    path = write_config(train={"shuffle": False}, record={"update_ratio": True})
    result = run(load_config(path), tmp_path / "runs")
    from gradexp.experiment import build_experiment

    experiment = build_experiment(load_config(path))
    batch_inputs, batch_targets = experiment.dataset.train.inputs[:64], experiment.dataset.train.targets[:64]
    experiment.train_loss(experiment.model(batch_inputs), batch_targets).backward()
    first = pd.read_csv(result.run_dir / "metrics.csv").iloc[0]
    # σ_max of U as the first step's forward used it (the initial weights), by numpy's SVD
    initial_U = experiment.model.rnn_model.U.detach().double().numpy()
    assert first["sigma_max/rnn_model.U"] == pytest.approx(np.linalg.svd(initial_U, compute_uv=False)[0], rel=1e-6)
    norms = {name: float(p.grad.norm()) for name, p in experiment.model.named_parameters()}
    for name, value in norms.items():
        assert first[f"grad_norm/{name}"] == pytest.approx(value, rel=1e-6)
    # plain SGD, no clipping: the first update is -lr g, so ‖Δθ‖/‖θ‖ = lr ‖g‖ / ‖θ‖ of the initial weights
    # (inf for the classifier's bias, which starts at zero as the book's does)
    for name, parameter in experiment.model.named_parameters():
        start = float(parameter.detach().double().norm())
        expected = 0.05 * norms[name] / start if start else math.inf
        assert first[f"update_ratio/{name}"] == pytest.approx(expected, rel=1e-5), name
    assert first["grad_norm/total"] == pytest.approx(math.sqrt(sum(v * v for v in norms.values())), rel=1e-6)


def test_same_config_and_seed_give_byte_identical_metrics(write_config, tmp_path: Path) -> None:
    path = write_config(clip={"mode": "norm", "threshold": 1.0})
    first = run(load_config(path), tmp_path / "a").run_dir
    second = run(load_config(path), tmp_path / "b").run_dir
    assert (first / "metrics.csv").read_bytes() == (second / "metrics.csv").read_bytes()
    other_seed = run(load_config(path, ["train.seed=1"]), tmp_path / "c").run_dir
    assert (first / "metrics.csv").read_bytes() != (other_seed / "metrics.csv").read_bytes()


def test_run_folders_are_never_reused(write_config, tmp_path: Path) -> None:
    path = write_config()
    folders = {run(load_config(path), tmp_path / "runs").run_dir for _ in range(3)}
    assert len(folders) == 3


@pytest.mark.parametrize("mode, threshold, norm_type", [("norm", 0.02, 2), ("global_norm", 0.05, 2), ("value", 0.002, 2)])
def test_clipping_shows_in_the_after_columns(write_config, tmp_path: Path, mode, threshold, norm_type) -> None:
    clip = {"mode": mode, "threshold": threshold} | ({"norm_type": norm_type} if mode != "value" else {})
    metrics = pd.read_csv(run_tiny(write_config, tmp_path, clip=clip).run_dir / "metrics.csv")
    after = metrics[[c for c in metrics.columns if c.startswith("clipped_norm/")]]
    before = metrics[[c for c in metrics.columns if c.startswith("grad_norm/")]]
    assert (after.to_numpy() <= before.to_numpy() * (1 + 1e-6)).all()
    if mode == "norm":
        assert (after.drop(columns="clipped_norm/total").to_numpy() <= threshold * (1 + 1e-6)).all()
    if mode == "global_norm":
        assert (metrics["clipped_norm/total"] <= threshold * (1 + 1e-6)).all()
    assert (metrics["clip_threshold"] == threshold).all() and metrics["clipped"].isin([0, 1]).all()
    assert metrics["clipped"].sum() > 0


def test_divergence_is_a_result(write_config, tmp_path: Path) -> None:
    result = run_tiny(write_config, tmp_path, optimizer={"lr": 1e30}, loss={"reduction": "sum"},
                      train={"epochs": 5, "flush_every": 7})
    summary = result.summary
    assert summary.status == "diverged" and summary.diverged
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    # the run stops at the first non-finite row, which is the last one written
    assert metrics["step"].iloc[-1] == summary.diverged_at_step == summary.steps
    last = metrics.iloc[-1]
    watched = ["loss"] + [f"grad_norm/{name}" for name in SRN_PARAMETERS]
    assert not all(math.isfinite(last[c]) for c in watched)
    assert all(math.isfinite(v) for v in metrics.iloc[:-1][watched].to_numpy().ravel())
    first_bad = [n for n in SRN_PARAMETERS if not math.isfinite(last[f"grad_norm/{n}"])]
    assert summary.diverged_parameter == (first_bad[0] if first_bad else "loss")
    assert {"summary.json", "metrics.csv", "grad_norms.pdf", "loss.pdf"} <= {p.name for p in result.run_dir.iterdir()}


def test_early_stopping_restores_best_and_plateau_decays_lr(write_config, tmp_path: Path) -> None:
    result = run_tiny(write_config, tmp_path, optimizer={"lr": 0.5},
                      train={"epochs": 40, "eval_every": 5, "patience": 3, "keep": "last"},
                      schedule={"name": "plateau", "monitor": "metric", "factor": 0.5, "patience": 0})
    summary = result.summary
    evaluations = pd.read_csv(result.run_dir / "eval.csv")
    dev = evaluations[evaluations.split == "dev"]
    assert summary.early_stopped and summary.steps < 200
    # early stopping tests the restored best model even under keep: last, and says so
    assert summary.test_model == "best"
    # stopped exactly `patience` evaluations after the best one
    assert list(dev["step"]).index(summary.best_dev["step"]) == len(dev) - 4
    lrs = pd.read_csv(result.run_dir / "metrics.csv")["lr"]
    assert lrs.iloc[0] == 0.5 and lrs.iloc[-1] < 0.5 and lrs.is_monotonic_decreasing


def test_step_schedule_decays_per_epoch(write_config, tmp_path: Path) -> None:
    result = run_tiny(write_config, tmp_path, train={"epochs": 4}, schedule={"name": "step", "every_epochs": 2,
                                                                             "gamma": 0.5})
    lrs = pd.read_csv(result.run_dir / "metrics.csv").groupby("epoch")["lr"].unique()
    assert [list(v) for v in lrs] == [[0.05], [0.05], [0.025], [0.025]]


def test_recording_off_keeps_losses(write_config, tmp_path: Path) -> None:
    on = pd.read_csv(run_tiny(write_config, tmp_path).run_dir / "metrics.csv")
    off = pd.read_csv(run_tiny(write_config, tmp_path, train={"record_norms": False}).run_dir / "metrics.csv")
    assert on["loss"].tolist() == off["loss"].tolist()
    assert off["grad_norm/total"].isna().all()


@pytest.mark.slow
def test_srn_explode_reproduces_the_article(tmp_path: Path) -> None:
    """E1: W's gradient norm passes 100 within the first epochs, then collapses as tanh saturates."""
    result = run(load_config(CONFIGS / "srn_explode.yaml"), tmp_path)
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    assert result.summary.status == "completed" and result.summary.steps == 250
    first_epochs = metrics[metrics["epoch"] <= 3]
    assert first_epochs["grad_norm/rnn_model.W"].max() > 100
    assert metrics["grad_norm/rnn_model.W"].iloc[-50:].median() < 1  # stalled: the norms collapsed toward zero


@pytest.mark.slow
def test_srn_clip_bounds_every_norm_and_keeps_learning(tmp_path: Path) -> None:
    explode = run(load_config(CONFIGS / "srn_explode.yaml"), tmp_path).run_dir
    clipped = run(load_config(CONFIGS / "srn_clip.yaml"), tmp_path).run_dir
    metrics = pd.read_csv(clipped / "metrics.csv")
    after = metrics[[c for c in metrics.columns if c.startswith("clipped_norm/") and c != "clipped_norm/total"]]
    assert (after.to_numpy() <= 5.0 + 1e-6).all()
    # training keeps updating: the W gradient does not collapse as in the explosion run
    assert metrics["grad_norm/rnn_model.W"].iloc[-50:].median() > 1
    explode_dev = pd.read_csv(explode / "eval.csv").query("split == 'dev'")["loss"].min()
    clipped_dev = pd.read_csv(clipped / "eval.csv").query("split == 'dev'")["loss"].min()
    assert clipped_dev < explode_dev


@pytest.mark.slow
def test_srn_clip_global_bounds_the_l1_total(tmp_path: Path) -> None:
    result = run(load_config(CONFIGS / "srn_clip_global.yaml"), tmp_path)
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    # the recorded total is an L2 norm, which never exceeds the L1 norm that was clipped to 6
    assert (metrics["clipped_norm/total"] <= 6.0 + 1e-5).all()
    assert result.summary.status == "completed"


def test_metrics_do_not_depend_on_the_callers_thread_count(write_config, tmp_path: Path) -> None:
    """The run trains with train.threads whatever torch's count was: E1's sizes put a 10-row product in every
    step (the folded embedding table), which MKL splits differently with one thread and with two."""
    config = load_config(write_config(model={"input_size": 32, "hidden_size": 32}))
    previous = torch.get_num_threads()
    written = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            written.append((run(config, tmp_path / str(threads)).run_dir / "metrics.csv").read_bytes())
            assert torch.get_num_threads() == threads  # put back afterwards
    finally:
        torch.set_num_threads(previous)
    assert written[0] == written[1]


def test_run_files_get_the_permissions_of_an_ordinary_open(write_config, tmp_path: Path) -> None:
    """Atomic writes go through mkstemp (0600); summary.json and the rest must be as readable as metrics.csv."""
    run_dir = run(load_config(write_config()), tmp_path / "runs").run_dir
    expected = (run_dir / "metrics.csv").stat().st_mode & 0o777
    for name in ("summary.json", "config.yaml", "best.pt", "grad_norms.pdf", "loss.pdf"):
        assert (run_dir / name).stat().st_mode & 0o777 == expected, name


def test_sigma_max_is_recorded_for_recurrent_matrices_only_when_asked(write_config, tmp_path: Path) -> None:
    off = pd.read_csv(run_tiny(write_config, tmp_path, record={"sigma_max": False}).run_dir / "metrics.csv")
    assert not [column for column in off.columns if column.startswith("sigma_max/")]
    mlp = run(load_config(CONFIGS / "mlp_regression_explode.yaml", ["train.epochs=1"]), tmp_path / "mlp").run_dir
    assert not [column for column in pd.read_csv(mlp / "metrics.csv").columns if column.startswith("sigma_max/")]


def test_a_config_with_the_old_train_record_norms_still_loads(write_config) -> None:
    config = load_config(write_config(train={"record_norms": False}))
    assert config.record.norms is False and "record_norms" not in config.to_dict()["train"]


@pytest.mark.parametrize("every, steps", [(1, list(range(1, 11))), (4, [1, 5, 9])])
def test_time_gradients_are_recorded_every_time_every_steps_as_the_model_gives_them(write_config, tmp_path: Path,
                                                                                     every: int, steps) -> None:
    """time_grads.csv: step, t1 ... tT at steps 1, 1 + every, ...; the first row is the first step's backward."""
    path = write_config(train={"shuffle": False}, record={"time_every": every})
    result = run(load_config(path), tmp_path / "runs")
    rows = pd.read_csv(result.run_dir / "time_grads.csv")
    assert list(rows.columns) == ["step"] + [f"t{t}" for t in range(1, 6)] and list(rows["step"]) == steps
    from gradexp.experiment import build_experiment

    experiment = build_experiment(load_config(path))
    experiment.time_gradients.enabled = True
    inputs, targets = experiment.dataset.train.inputs[:64], experiment.dataset.train.targets[:64]
    experiment.train_loss(experiment.model(inputs), targets).backward()
    assert rows.iloc[0, 1:].to_numpy() == pytest.approx(experiment.time_gradients.norms.double().numpy(), rel=1e-6)


def test_no_time_gradients_for_a_feed_forward_model_or_when_switched_off(write_config, tmp_path: Path) -> None:
    off = run_tiny(write_config, tmp_path, record={"time_grads": False}).run_dir
    mlp = run(load_config(CONFIGS / "mlp_regression_explode.yaml", ["train.epochs=1"]), tmp_path / "mlp").run_dir
    for run_dir in (off, mlp):
        assert not (run_dir / "time_grads.csv").exists() and not (run_dir / "time_grads.pdf").exists()


def test_the_fused_backend_recording_time_gradients_is_a_config_error(write_config) -> None:
    from gradexp.errors import ConfigError
    from gradexp.experiment import build_experiment

    with pytest.raises(ConfigError, match=r"tiny.yaml: record.time_grads: model.backend fused .* bptt or loop"):
        build_experiment(load_config(write_config(model={"backend": "fused"})))
    build_experiment(load_config(write_config(model={"backend": "fused"}, record={"time_grads": False})))


def test_depth_ratio_is_the_first_layers_norm_over_the_last_and_fades_as_seed_003_says(tmp_path: Path) -> None:
    """E5's three stacks, two epochs each: the default stack's first layer gets a tiny fraction of the last
    layer's gradient, Xavier initialisation more, batch normalisation the most (seed 003)."""
    medians = {}
    for name in ("deep_sigmoid", "deep_sigmoid_xavier", "deep_sigmoid_batchnorm"):
        result = run(load_config(CONFIGS / f"{name}.yaml", ["train.epochs=2"]), tmp_path / name)
        metrics = pd.read_csv(result.run_dir / "metrics.csv")
        expected = metrics["grad_norm/layers.0.weight"] / metrics["grad_norm/layers.5.weight"]
        assert metrics["depth_ratio"].to_numpy() == pytest.approx(expected.to_numpy(), rel=1e-9)
        assert result.summary.median_depth_ratio == pytest.approx(float(np.median(metrics["depth_ratio"])))
        assert (result.run_dir / "grad_flow.pdf").read_bytes().startswith(b"%PDF")
        medians[name] = result.summary.median_depth_ratio
    assert medians["deep_sigmoid"] < 0.01 < medians["deep_sigmoid_batchnorm"]
    assert medians["deep_sigmoid"] < medians["deep_sigmoid_xavier"] < medians["deep_sigmoid_batchnorm"]


def test_no_depth_ratio_for_a_recurrent_model_or_when_switched_off(write_config, tmp_path: Path) -> None:
    srn = run_tiny(write_config, tmp_path)
    off = run(load_config(CONFIGS / "deep_sigmoid.yaml", ["train.epochs=1", "record.depth_ratio=false"]),
              tmp_path / "off")
    for result in (srn, off):
        assert "depth_ratio" not in pd.read_csv(result.run_dir / "metrics.csv").columns
        assert result.summary.median_depth_ratio is None and not (result.run_dir / "grad_flow.pdf").exists()


@pytest.mark.parametrize("eval_at, steps", [("gradexp", [4, 8, 12, 16, 20]), ("book", [5, 9, 13, 17, 20])])
def test_dev_evaluations_come_at_gradexps_steps_or_at_the_books(write_config, tmp_path: Path, eval_at: str,
                                                                 steps: list[int]) -> None:
    """The book's RunnerV3 counts steps from 0 and evaluates after its steps 100, 200, ... (gradexp's 101, 201,
    ...) and after the last; gradexp after its steps 100, 200, ... and the last."""
    path = write_config(train={**TINY_SRN["train"], "epochs": 4, "eval_every": 4, "eval_at": eval_at})
    result = run(load_config(path), tmp_path)
    evaluations = pd.read_csv(result.run_dir / "eval.csv")
    assert list(evaluations.loc[evaluations["split"] == "dev", "step"]) == steps
