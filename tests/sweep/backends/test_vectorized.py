"""Vectorized sweeps: every batched run writes what its sequential twin writes, to float64 rounding; the
batch's shared clip and SGD calls write the bytes of per-point calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import gradexp.sweep.backends.vectorized as vectorized_backend
from gradexp.cli import main
from gradexp.config.loading import load_config
from gradexp.experiment import build_experiment
from gradexp.sweep import SweepResult, plan_sweep, run_sweep
from gradexp.sweep.backends.local import LocalBackend
from gradexp.sweep.backends.vectorized import VectorizedBackend, batch_key

TINY_MLP: dict[str, Any] = {
    "data": {"name": "regression", "n_samples": 200, "n_features": 5, "train_size": 100},
    "model": {"name": "mlp", "hidden": [8], "init": "he_uniform"},
    "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
    "loss": {"name": "mse"},
    "clip": {"mode": "norm", "threshold": 1.0},
    "train": {"epochs": 3, "batch_size": 32, "eval_every": 4, "shuffle": True, "keep": "last", "seed": 0,
              "flush_every": 3, "dtype": "float64"},
}
# Values read back from the summaries that must agree; `seconds` is the batch's time, not the run's own.
TIMED = {"seconds"}


def flattened(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flattened(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def assert_twins(sequential: SweepResult, vectorized: SweepResult) -> None:
    """Same statuses, same files, metrics.csv, eval.csv, time_grads.csv and cell_grads.csv equal to float64
    rounding, same summaries."""
    for alone, batched in zip(sequential.outcomes, vectorized.outcomes):
        assert (alone.point.index, alone.status) == (batched.point.index, batched.status)
        assert sorted(p.name for p in alone.run_dir.iterdir()) == sorted(p.name for p in batched.run_dir.iterdir())
        for name in ("metrics.csv", "eval.csv", "time_grads.csv", "cell_grads.csv"):
            if not (alone.run_dir / name).exists():
                continue
            expected, got = pd.read_csv(alone.run_dir / name), pd.read_csv(batched.run_dir / name)
            assert list(got.columns) == list(expected.columns)
            pd.testing.assert_frame_equal(got, expected, rtol=1e-9, atol=1e-12, obj=f"{batched.run_dir.name}/{name}")
        expected, got = (flattened(json.loads((outcome.run_dir / "summary.json").read_text()))
                         for outcome in (alone, batched))
        assert set(got) == set(expected)
        for key, value in expected.items():
            if key in TIMED:
                continue
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
            else:
                assert got[key] == value, key


def sweep_both_ways(path: Path, overrides: list[str], grid: list[str], out: Path, seeds: int = 1
                    ) -> tuple[SweepResult, SweepResult]:
    plan = plan_sweep(path, overrides, grid, seeds)
    return run_sweep(plan, out / "sequential", LocalBackend()), run_sweep(plan, out / "vectorized", VectorizedBackend())


def test_srn_runs_match_their_sequential_twins(write_config, tmp_path: Path) -> None:
    """Learning rate x clip threshold, none included: four SRNs, each with its own rate and clip mode."""
    path = write_config(clip={"mode": "norm", "threshold": 0.2}, train={"dtype": "float64", "epochs": 2},
                        record={"update_ratio": True})
    sequential, vectorized = sweep_both_ways(path, [], ["optimizer.lr=0.05,0.5", "clip.threshold=0.2,none"],
                                             tmp_path)
    assert [o.status for o in vectorized.outcomes] == ["completed"] * 4
    assert all((outcome.run_dir / "time_grads.csv").exists() for outcome in vectorized.outcomes)
    assert "update_ratio/rnn_model.U" in pd.read_csv(vectorized.outcomes[0].run_dir / "metrics.csv").columns
    clipped = pd.read_csv(vectorized.outcomes[0].run_dir / "metrics.csv")
    assert clipped["clipped"].any() and clipped["clip_threshold"].eq(0.2).all()
    assert_twins(sequential, vectorized)


def test_mlp_runs_match_their_sequential_twins_divergence_included(write_config, tmp_path: Path) -> None:
    """E2's regression MLP (momentum, shuffling, keep last): the unclipped large rate diverges at the same step."""
    path = write_config(name="mlp", base=TINY_MLP)
    sequential, vectorized = sweep_both_ways(path, [], ["optimizer.lr=0.01,0.3", "clip.threshold=1,none"], tmp_path)
    statuses = [o.status for o in vectorized.outcomes]
    assert statuses == ["completed", "completed", "completed", "diverged"]
    assert_twins(sequential, vectorized)


def test_stateful_clip_modes_adam_and_batch_norm_match(write_config, tmp_path: Path) -> None:
    """Per-point state: Adam's moments, AutoClip's history, batch norm's running statistics."""
    base = {**TINY_MLP, "optimizer": {"name": "adam", "lr": 0.01}, "clip": {"mode": "autoclip"}}
    path = write_config(name="bn", base=base, model={"hidden": [6, 6], "activation": "sigmoid", "batch_norm": True})
    sequential, vectorized = sweep_both_ways(path, [], ["clip.percentile=10,50"], tmp_path)
    assert_twins(sequential, vectorized)


def test_points_of_different_shapes_train_in_separate_batches(write_config, tmp_path: Path) -> None:
    """Hidden size x seed: each size is a batch of two seeds (own data, own initial weights)."""
    path = write_config(train={"dtype": "float64", "epochs": 1})
    configs = [load_config(path, overrides) for overrides in
               (["model.hidden_size=4"], ["model.hidden_size=4", "train.seed=1"], ["model.hidden_size=6"])]
    keys = [batch_key(build_experiment(config)) for config in configs]
    assert keys[0] == keys[1] != keys[2]
    sequential, vectorized = sweep_both_ways(path, [], ["model.hidden_size=4,6"], tmp_path, seeds=2)
    assert_twins(sequential, vectorized)


def test_a_point_alone_in_its_shape_trains_through_the_runner(write_config, tmp_path: Path, monkeypatch) -> None:
    path = write_config(train={"dtype": "float64", "epochs": 1})
    batches = []
    monkeypatch.setattr(vectorized_backend.Batch, "train", lambda self: batches.append(self) or iter([]))
    result = run_sweep(plan_sweep(path, [], ["model.hidden_size=4,6"], 1), tmp_path, VectorizedBackend())
    assert not batches and [o.status for o in result.outcomes] == ["completed", "completed"]


def test_cli_sweep_vectorize(write_config, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sweep", str(write_config()), "--grid", "optimizer.lr=0.05,0.1",
                                       "--set", "train.epochs=1", "--vectorize", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "[1/2] finished: 000-lr0.05-seed0: completed" in result.output
    table = pd.read_csv(next(tmp_path.glob("sweep-tiny-*/sweep.csv")))
    assert list(table["status"]) == ["completed", "completed"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_vectorized_on_cuda_matches_cpu(write_config, tmp_path: Path) -> None:
    path = write_config(train={"dtype": "float64", "epochs": 1})
    on_cpu = run_sweep(plan_sweep(path, [], ["optimizer.lr=0.05,0.1"], 1), tmp_path / "cpu", VectorizedBackend())
    on_gpu = run_sweep(plan_sweep(path, ["train.device=cuda"], ["optimizer.lr=0.05,0.1"], 1), tmp_path / "gpu",
                       VectorizedBackend())
    for cpu, gpu in zip(on_cpu.outcomes, on_gpu.outcomes):
        pd.testing.assert_frame_equal(pd.read_csv(gpu.run_dir / "metrics.csv"),
                                      pd.read_csv(cpu.run_dir / "metrics.csv"), rtol=1e-7, atol=1e-9)


def test_points_clipped_and_stepped_together_write_the_bytes_of_points_stepped_alone(
        write_config, tmp_path: Path, monkeypatch) -> None:
    """float32, so the bytes tell: the batch's shared clip and SGD calls change nothing in any run's files.

    Momentum 0.9 and the value mode keep some points on their own optimizer and clipper in the same batch.
    """
    path = write_config(clip={"mode": "norm", "threshold": 0.2}, train={"epochs": 2})
    plan = plan_sweep(path, [], ["optimizer.lr=0.05,0.5", "optimizer.momentum=0,0.9", "clip.threshold=0.2,2,none"],
                      seeds=1)
    together = run_sweep(plan, tmp_path / "together", VectorizedBackend())
    monkeypatch.setattr(vectorized_backend, "is_plain_sgd", lambda optimizer: False)
    monkeypatch.setattr(vectorized_backend, "clip_points", lambda clippers, grads, params: [
        clipper.clip(point_grads, point_params) for clipper, point_grads, point_params in zip(clippers, grads, params)])
    alone = run_sweep(plan, tmp_path / "alone", VectorizedBackend())
    for shared, own in zip(together.outcomes, alone.outcomes):
        assert shared.status == own.status == "completed"
        for name in ("metrics.csv", "eval.csv"):
            assert (shared.run_dir / name).read_bytes() == (own.run_dir / name).read_bytes(), shared.run_dir.name
    metrics = pd.read_csv(together.outcomes[0].run_dir / "metrics.csv")
    assert metrics["clipped"].any()


def test_a_point_that_records_no_norms_batches_with_one_that_does(write_config, tmp_path: Path) -> None:
    path = write_config(clip={"mode": "norm", "threshold": 0.3}, train={"dtype": "float64", "epochs": 1})
    sequential, vectorized = sweep_both_ways(path, [], ["record.norms=true,false"], tmp_path)
    recorded, unrecorded = (pd.read_csv(outcome.run_dir / "metrics.csv") for outcome in vectorized.outcomes)
    assert recorded["grad_norm/total"].notna().all() and unrecorded["grad_norm/total"].isna().all()
    assert_twins(sequential, vectorized)


def test_loop_backend_points_recording_time_gradients_train_alone_and_match(write_config, tmp_path: Path) -> None:
    """The loop backend gives ∂L/∂h_t through hooks, which vmap has not: such points train as `gradexp run`."""
    path = write_config(model={"backend": "loop"}, train={"dtype": "float64", "epochs": 1})
    experiments = [build_experiment(load_config(path, [f"optimizer.lr={lr}"])) for lr in (0.05, 0.5)]
    assert batch_key(experiments[0]) != batch_key(experiments[1])
    batched = [build_experiment(load_config(path, ["record.time_grads=false", f"optimizer.lr={lr}"]))
               for lr in (0.05, 0.5)]
    assert batch_key(batched[0]) == batch_key(batched[1])
    sequential, vectorized = sweep_both_ways(path, [], ["optimizer.lr=0.05,0.5"], tmp_path)
    assert_twins(sequential, vectorized)


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_gated_models_match_their_sequential_twins(write_config, tmp_path: Path, model: str) -> None:
    """Without gradients through time their points share a batch; with them (the loop's hooks) each trains
    alone: either way the files are the sequential runs' (the LSTM's cell_grads.csv too)."""
    path = write_config(model={"name": model, "input_size": 6, "hidden_size": 6},
                        train={"dtype": "float64", "epochs": 2})
    for recording in ("true", "false"):
        out = tmp_path / recording
        sequential, vectorized = sweep_both_ways(path, [f"record.time_grads={recording}"],
                                                 ["optimizer.lr=0.05,0.5"], out)
        assert [o.status for o in vectorized.outcomes] == ["completed"] * 2
        assert all((o.run_dir / "cell_grads.csv").exists() == (model == "lstm" and recording == "true")
                   for o in vectorized.outcomes)
        assert_twins(sequential, vectorized)
