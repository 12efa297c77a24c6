"""evaluate() against one whole-split pass computed by hand (and sklearn's metrics); Metric.improves."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import accuracy_score, mean_squared_error
from torch import nn
from torch.nn import functional

from gradexp import evaluation
from gradexp.data.base import Split
from gradexp.evaluation import TASK_METRICS, Metric, evaluate
from gradexp.losses import LOSSES

ACCURACY = TASK_METRICS["classification"]
MSE = TASK_METRICS["regression"]


class CountingModel(nn.Module):
    """Wraps a model, counting forward calls and noting whether autograd was on during each."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.batch_sizes: list[int] = []
        self.grad_enabled: list[bool] = []

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(len(inputs))
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.inner(inputs)


def classification_case(examples: int = 11, classes: int = 4) -> tuple[CountingModel, Split]:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = CountingModel(nn.Linear(3, classes).double())
    inputs = torch.randn(examples, 3, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, classes, (examples,), generator=generator)
    return model, Split(inputs, targets)


def regression_case(examples: int = 10, width: int = 1) -> tuple[CountingModel, Split]:
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model = CountingModel(nn.Linear(3, width).double())
    inputs = torch.randn(examples, 3, generator=generator, dtype=torch.float64)
    shape = (examples,) if width == 1 else (examples, width)
    return model, Split(inputs, torch.randn(*shape, generator=generator, dtype=torch.float64))


@pytest.mark.parametrize("batch", [3, 4, 11, 4096])
def test_classification_over_several_batches_equals_one_pass_by_hand(
        monkeypatch: pytest.MonkeyPatch, batch: int) -> None:
    monkeypatch.setattr(evaluation, "EVALUATION_BATCH", batch)
    model, split = classification_case()
    result = evaluate(model, split, LOSSES.get("cross_entropy")(reduction="mean"), ACCURACY)
    assert len(model.batch_sizes) == math.ceil(len(split) / batch)  # several batches, the last one short

    with torch.no_grad():
        outputs = model.inner(split.inputs)
    expected_loss = functional.cross_entropy(outputs, split.targets).item()
    expected_accuracy = accuracy_score(split.targets.numpy(), outputs.argmax(dim=1).numpy())
    assert set(result) == {"loss", "accuracy"}
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-12)
    assert result["accuracy"] == pytest.approx(expected_accuracy, rel=1e-12)
    assert (outputs.argmax(dim=1) == split.targets).sum().item() / len(split) == pytest.approx(result["accuracy"])


@pytest.mark.parametrize("width", [1, 3])
def test_regression_over_several_batches_equals_one_pass_by_hand(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    monkeypatch.setattr(evaluation, "EVALUATION_BATCH", 3)
    model, split = regression_case(width=width)
    result = evaluate(model, split, LOSSES.get("mse")(reduction="mean"), MSE)
    assert model.batch_sizes == [3, 3, 3, 1]

    with torch.no_grad():
        outputs = model.inner(split.inputs)
    targets = split.targets.reshape(outputs.shape)
    per_example = ((outputs - targets) ** 2).mean(dim=1)  # mean over the target's width, per example
    assert set(result) == {"loss", "mse"}
    assert result["mse"] == pytest.approx(per_example.mean().item(), rel=1e-12)
    assert result["mse"] == pytest.approx(mean_squared_error(targets.numpy(), outputs.numpy()), rel=1e-12)
    assert result["loss"] == pytest.approx(per_example.mean().item(), rel=1e-12)


def test_onehot_loss_over_batches_is_the_mean_per_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluation, "EVALUATION_BATCH", 4)
    model, split = classification_case(examples=10)
    result = evaluate(model, split, LOSSES.get("mse_onehot")(reduction="mean"), ACCURACY)
    with torch.no_grad():
        outputs = model.inner(split.inputs)
    one_hot = functional.one_hot(split.targets, outputs.shape[1]).double()
    assert result["loss"] == pytest.approx(((outputs - one_hot) ** 2).mean(dim=1).mean().item(), rel=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_runs_in_eval_mode_and_restores_the_models_mode(
        monkeypatch: pytest.MonkeyPatch, training: bool) -> None:
    monkeypatch.setattr(evaluation, "EVALUATION_BATCH", 5)
    torch.manual_seed(2)
    # Dropout in training mode would make the result random and unlike the eval-mode pass below.
    inner = nn.Sequential(nn.Linear(3, 16), nn.Dropout(p=0.5), nn.Linear(16, 4)).double()
    model = CountingModel(inner)
    _, split = classification_case(examples=12)
    model.train(training)
    result = evaluate(model, split, LOSSES.get("cross_entropy")(reduction="mean"), ACCURACY)

    assert model.training is training
    assert all(module.training is training for module in model.modules())
    inner.eval()
    with torch.no_grad():
        expected = functional.cross_entropy(inner(split.inputs), split.targets).item()
    assert result["loss"] == pytest.approx(expected, rel=1e-12)


def test_evaluate_runs_under_no_grad_and_leaves_autograd_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluation, "EVALUATION_BATCH", 4)
    model, split = classification_case()
    assert torch.is_grad_enabled()
    evaluate(model, split, LOSSES.get("cross_entropy")(reduction="mean"), ACCURACY)
    assert model.grad_enabled == [False, False, False]
    assert torch.is_grad_enabled()
    assert all(parameter.grad is None for parameter in model.parameters())


def test_evaluate_returns_plain_floats() -> None:
    model, split = classification_case()
    result = evaluate(model, split, LOSSES.get("cross_entropy")(reduction="mean"), ACCURACY)
    assert all(type(value) is float for value in result.values())


LOWER = Metric("mse", False, lambda outputs, targets: outputs.sum())


@pytest.mark.parametrize("metric", [ACCURACY, MSE, LOWER])
def test_nan_never_improves(metric: Metric) -> None:
    for best in [None, 0.5, math.inf, -math.inf]:
        assert metric.improves(math.nan, best) is False
        assert metric.improves(float("nan"), best) is False


@pytest.mark.parametrize("metric", [ACCURACY, MSE])
def test_a_tie_does_not_improve(metric: Metric) -> None:
    assert metric.improves(0.25, 0.25) is False
    assert metric.improves(0.0, 0.0) is False


@pytest.mark.parametrize("metric", [ACCURACY, MSE])
def test_anything_but_nan_improves_on_no_best(metric: Metric) -> None:
    for candidate in [0.0, 1.0, -3.0, math.inf, -math.inf]:
        assert metric.improves(candidate, None) is True


def test_direction_follows_higher_is_better() -> None:
    assert ACCURACY.higher_is_better and not MSE.higher_is_better
    assert ACCURACY.improves(0.8, 0.7) is True
    assert ACCURACY.improves(0.6, 0.7) is False
    assert MSE.improves(0.6, 0.7) is True
    assert MSE.improves(0.8, 0.7) is False
    assert MSE.improves(1.0, math.inf) is True
    assert ACCURACY.improves(0.0, -math.inf) is True
