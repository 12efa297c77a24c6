"""Gradient checking: the finite differences themselves, every built-in model passing, a wrong gradient failing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from gradexp.cli import main
from gradexp.config.loading import load_config
from gradexp.data.base import DataSpec, Split
from gradexp.gradcheck import (
    central_differences,
    check_config,
    check_gradients,
    relative_error,
    richardson_differences,
    sampled_coordinates,
)
from gradexp.models import MODELS, mlp
from tests.conftest import TINY_SRN, merged

TRAINING = {"optimizer": {"name": "sgd", "lr": 0.1}, "train": {"epochs": 1, "batch_size": 8, "seed": 0}}
TINY_MLP: dict[str, Any] = {
    "data": {"name": "regression", "n_samples": 60, "n_features": 4, "train_size": 40},
    "model": {"name": "mlp", "hidden": [6], "activation": "relu", "init": "he_uniform"},
    "loss": {"name": "mse"}, **TRAINING,
}
# E5's stack: 10 -> 5 -> 8 -> 8 -> 8 -> 8 -> 8 sigmoid layers, whose first gradients are ~1e-4 of the last ones.
DEEP_SIGMOID: dict[str, Any] = {
    "data": {"name": "classification", "n_classes": 8},
    "model": {"name": "mlp", "hidden": [5, 8, 8, 8, 8], "activation": "sigmoid"},
    "loss": {"name": "cross_entropy"}, **TRAINING,
}
BATCH_NORM_TANH = merged(DEEP_SIGMOID, {"model": {"hidden": [6, 6], "activation": "tanh", "batch_norm": True}})
# One tiny config per built-in model at least; each must pass the seed-003 threshold.
PASSING = {"srn": TINY_SRN, "mlp": TINY_MLP, "deep_sigmoid": DEEP_SIGMOID, "batch_norm_tanh": BATCH_NORM_TANH,
           "lstm": merged(TINY_SRN, {"model": {"name": "lstm", "input_size": 6, "hidden_size": 6}}),
           "gru": merged(TINY_SRN, {"model": {"name": "gru", "input_size": 6, "hidden_size": 6}})}


def write(tmp_path: Path, raw: dict[str, Any], name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def quick_check(path: Path, **settings):
    return check_config(load_config(path), **{"batches": 2, "batch_size": 4, "max_coordinates": 12, **settings})


def test_every_built_in_model_has_a_passing_case() -> None:
    assert set(MODELS.names()) <= {raw["model"]["name"] for raw in PASSING.values()}


@pytest.mark.parametrize("case", sorted(PASSING))
def test_backprop_matches_finite_differences(tmp_path: Path, case: str) -> None:
    result = quick_check(write(tmp_path, PASSING[case]))
    assert result.passed, result.worst
    assert result.batches == 2 and result.batch_size == 4
    for check in result.parameters:
        assert check.relative_error < 1e-7
        assert check.checked == min(check.size, 12)
        assert check.numeric_norm == pytest.approx(check.backprop_norm, rel=1e-6)


def test_deep_sigmoid_needs_the_coarse_step_for_its_vanished_layers(tmp_path: Path) -> None:
    """At eps = 1e-6 float64 rounding swamps the first layer's ~1e-4 gradient; the extrapolated coarse step does not."""
    fine_only = quick_check(write(tmp_path, DEEP_SIGMOID), coarse_epsilon=1e-6)
    both = quick_check(write(tmp_path, DEEP_SIGMOID))
    first = {check.name: check for check in both.parameters}["layers.0.weight"]
    last = {check.name: check for check in both.parameters}["layers.5.weight"]
    assert last.backprop_norm > 1000 * first.backprop_norm
    assert first.step == "coarse" and first.relative_error < 1e-7
    assert {c.name: c for c in fine_only.parameters}["layers.0.weight"].relative_error > 1e-7


class ScaledSigmoidFunction(torch.autograd.Function):
    """sigmoid forward, and a backward multiplied by `factor`: a gradient written wrongly by hand."""

    factor = 1.0

    @staticmethod
    def forward(ctx, pre_activation: torch.Tensor) -> torch.Tensor:
        output = torch.sigmoid(pre_activation)
        ctx.save_for_backward(output)
        return output

    @staticmethod
    def backward(ctx, upstream: torch.Tensor) -> torch.Tensor:
        (output,) = ctx.saved_tensors
        return upstream * output * (1 - output) * ScaledSigmoidFunction.factor


class HandWrittenSigmoid(nn.Module):
    def forward(self, pre_activation: torch.Tensor) -> torch.Tensor:
        return ScaledSigmoidFunction.apply(pre_activation)


@pytest.fixture
def hand_written_sigmoid(monkeypatch):
    """Make `activation: sigmoid` build the hand-written sigmoid; returns a setter for its backward's factor."""
    monkeypatch.setitem(mlp.ACTIVATIONS, "sigmoid", HandWrittenSigmoid)

    def set_factor(factor: float) -> None:
        monkeypatch.setattr(ScaledSigmoidFunction, "factor", factor)

    return set_factor


SIGMOID_NET = merged(DEEP_SIGMOID, {"model": {"hidden": [6, 6]}})


@pytest.mark.parametrize("factor, passes", [(1.0, True), (1.0001, False), (1.01, False), (2.0, False)])
def test_a_wrong_backward_fails_and_only_upstream_of_it(tmp_path: Path, hand_written_sigmoid, factor: float,
                                                         passes: bool) -> None:
    hand_written_sigmoid(factor)
    result = quick_check(write(tmp_path, SIGMOID_NET))
    assert result.passed is passes
    errors = {check.name: check.relative_error for check in result.parameters}
    # The output layer sits after every sigmoid, so its gradient stays right.
    assert errors["layers.2.weight"] < 1e-7 and errors["layers.2.bias"] < 1e-7
    if not passes:
        # A backward scaled by f makes g = f g_true, so the relative error is |f - 1| / (f + 1) or more.
        assert min(errors["layers.0.weight"], errors["layers.1.weight"]) >= 0.9 * (factor - 1) / (factor + 1)


def parameter_function(model: nn.Module, loss: nn.Module, batch: Split):
    names = [name for name, _ in model.named_parameters()]

    def objective(*values: torch.Tensor) -> torch.Tensor:
        outputs = torch.func.functional_call(model, dict(zip(names, values)), (batch.inputs,))
        return loss(outputs, batch.targets)

    return objective, tuple(p.detach().clone().requires_grad_(True) for _, p in model.named_parameters())


@pytest.mark.parametrize("factor", [1.0, 1.01])
def test_agrees_with_torch_autograd_gradcheck(hand_written_sigmoid, factor: float) -> None:
    hand_written_sigmoid(factor)
    torch.manual_seed(0)
    spec = DataSpec(task="classification", input_shape=(5,), output_dim=3)
    model = MODELS.get("mlp")(spec, hidden=[4, 4], activation="sigmoid").double()
    batch = Split(torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2]))
    loss = nn.CrossEntropyLoss()
    objective, parameters = parameter_function(model, loss, batch)
    torch_says = torch.autograd.gradcheck(objective, parameters, eps=1e-6, atol=1e-8, rtol=1e-6,
                                          raise_exception=False)
    ours = check_gradients(model, loss, [batch])
    assert torch_says is ours.passed is (factor == 1.0)


def test_relative_error_by_hand() -> None:
    assert relative_error(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 4.0])) == 0.0
    assert relative_error(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])) == pytest.approx(2 ** 0.5 / 2)
    assert relative_error(torch.tensor([2.0]), torch.tensor([1.0])) == pytest.approx(1 / 3)
    assert relative_error(torch.zeros(3), torch.zeros(3)) == 0.0  # a dead unit is not an error


def test_central_and_richardson_differences_on_a_cubic() -> None:
    """For J = sum(p^3): (J(p + e) - J(p - e)) / 2e = 3p^2 + e^2 exactly, and Richardson removes the e^2."""
    parameter = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)

    def objective() -> torch.Tensor:
        return parameter.pow(3).sum()

    coordinates = torch.tensor([0, 2])
    epsilon = 1e-2
    central = central_differences(objective, parameter, coordinates, epsilon)
    torch.testing.assert_close(central, 3 * parameter[[0, 2]] ** 2 + epsilon ** 2, rtol=0, atol=1e-12)
    torch.testing.assert_close(richardson_differences(objective, parameter, coordinates, epsilon),
                               3 * parameter[[0, 2]] ** 2, rtol=0, atol=1e-12)
    assert parameter.tolist() == [0.5, -2.0, 3.0]  # every coordinate put back


def test_sampled_coordinates() -> None:
    assert sampled_coordinates(5, 8, torch.Generator().manual_seed(0)).tolist() == [0, 1, 2, 3, 4]
    chosen = sampled_coordinates(1000, 8, torch.Generator().manual_seed(0))
    assert len(set(chosen.tolist())) == 8 and chosen.tolist() == sorted(chosen.tolist())
    assert 0 <= chosen.min() and chosen.max() < 1000
    assert torch.equal(chosen, sampled_coordinates(1000, 8, torch.Generator().manual_seed(0)))


def invoke(*args: Any):
    return CliRunner().invoke(main, ["gradcheck", *map(str, args)], catch_exceptions=False)


CLI_SETTINGS = ("--batches", "1", "--batch-size", "4", "--max-coordinates", "8")


def test_cli_prints_each_parameter_and_exits_0_when_all_pass(tmp_path: Path) -> None:
    result = invoke(write(tmp_path, SIGMOID_NET), *CLI_SETTINGS)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["parameter", "checked", "backprop", "norm", "relative", "error", "step"]
    assert [line.split()[0] for line in lines[1:-1]] == [f"layers.{i}.{kind}" for i in range(3)
                                                         for kind in ("weight", "bias")]
    assert lines[1].split()[1] == "8/60"  # 6 x 10 weights, 8 sampled
    assert lines[-1].startswith("passed: largest relative error") and "threshold 1e-07" in lines[-1]


def test_cli_exits_1_on_a_wrong_gradient_and_marks_it(tmp_path: Path, hand_written_sigmoid) -> None:
    hand_written_sigmoid(1.001)
    result = invoke(write(tmp_path, SIGMOID_NET), *CLI_SETTINGS)
    assert result.exit_code == 1
    failing = [line.split()[0] for line in result.output.splitlines() if line.endswith("FAIL")]
    assert "layers.0.weight" in failing and "layers.2.weight" not in failing
    assert result.output.splitlines()[-1].startswith("FAILED")


def test_cli_threshold_and_errors(tmp_path: Path) -> None:
    path = write(tmp_path, SIGMOID_NET)
    assert invoke(path, *CLI_SETTINGS, "--threshold", "1e-30").exit_code == 1  # nothing is that exact
    missing = invoke(tmp_path / "absent.yaml")
    assert missing.exit_code == 2 and missing.output.strip() == f"error: {tmp_path / 'absent.yaml'}: no such file"
    assert "Example: gradexp gradcheck" in invoke("--help").output


class RecordedProgress:
    """Each call the check makes, and torch's thread count at the time."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, int]] = []

    def started(self, names) -> None:
        self.calls.append(("started", list(names), torch.get_num_threads()))

    def checked(self, check) -> None:
        self.calls.append(("checked", check.name, torch.get_num_threads()))


@pytest.mark.parametrize("threads", [1, 2])
def test_the_check_reports_each_parameter_as_it_goes_with_the_configs_threads(tmp_path: Path, threads: int) -> None:
    progress = RecordedProgress()
    outside = torch.get_num_threads()
    result = check_config(load_config(write(tmp_path, merged(SIGMOID_NET, {"train": {"threads": threads}}))),
                          batches=1, batch_size=4, max_coordinates=4, progress=progress)
    names = [check.name for check in result.parameters]
    assert progress.calls[0][:2] == ("started", names)
    assert [call[:2] for call in progress.calls[1:]] == [("checked", name) for name in names]
    assert {call[2] for call in progress.calls} == {threads}  # train.threads, like `gradexp run`
    assert torch.get_num_threads() == outside  # and put back after
