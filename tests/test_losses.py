"""Losses against torch's functional losses and hand computations on small tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional

from gradexp.losses import LOSSES


def loss(name: str, reduction: str) -> torch.nn.Module:
    return LOSSES.get(name)(reduction=reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_equals_torchs(reduction: str) -> None:
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(7, 4, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 4, (7,), generator=generator)
    expected = functional.cross_entropy(outputs, targets, reduction=reduction)
    assert torch.allclose(loss("cross_entropy", reduction)(outputs, targets), expected, rtol=1e-12, atol=0)


def test_cross_entropy_by_hand_on_two_examples() -> None:
    outputs = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    targets = torch.tensor([0, 1])
    # -log softmax: log 2 for the first, log(1 + e^2) for the second.
    expected_each = torch.tensor([math.log(2.0), math.log(1.0 + math.e ** 2)], dtype=torch.float64)
    assert torch.allclose(loss("cross_entropy", "sum")(outputs, targets), expected_each.sum(), rtol=1e-12)
    assert torch.allclose(loss("cross_entropy", "mean")(outputs, targets), expected_each.mean(), rtol=1e-12)


def test_cross_entropy_defaults_to_mean() -> None:
    outputs = torch.tensor([[1.0, -1.0, 0.5], [0.2, 0.3, -2.0]])
    targets = torch.tensor([2, 0])
    assert torch.equal(LOSSES.get("cross_entropy")()(outputs, targets), functional.cross_entropy(outputs, targets))


def test_mse_by_hand_with_targets_of_shape_n_against_outputs_n_by_1() -> None:
    outputs = torch.tensor([[1.0], [2.0], [4.0]])
    targets = torch.tensor([0.0, 2.0, 1.0])
    # Squared errors 1, 0, 9. Broadcasting (3, 1) against (3,) would average a 3x3 table instead.
    assert loss("mse", "mean")(outputs, targets).item() == pytest.approx(10.0 / 3.0)
    assert loss("mse", "sum")(outputs, targets).item() == pytest.approx(10.0)
    assert loss("mse", "mean")(outputs, targets).shape == ()


def test_mse_by_hand_on_several_targets_per_example() -> None:
    outputs = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    targets = torch.tensor([[0.0, 0.0, 1.0], [0.5, 1.5, 0.5]])
    # Squared errors 1, 0, 4 and 0, 1, 0: six values summing to 6.
    assert loss("mse", "mean")(outputs, targets).item() == pytest.approx(1.0)
    assert loss("mse", "sum")(outputs, targets).item() == pytest.approx(6.0)


def onehot_squared_error_by_hand(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per example: the mean over classes of (output - one-hot)^2, as Keras' 'mse' on one-hot labels (E4)."""
    rows = []
    for output, target in zip(outputs.tolist(), targets.tolist()):
        one_hot = [1.0 if k == target else 0.0 for k in range(len(output))]
        rows.append(sum((o - y) ** 2 for o, y in zip(output, one_hot)) / len(output))
    return torch.tensor(rows, dtype=torch.float64)


ONEHOT_OUTPUTS = torch.tensor([[0.9, 0.1, 0.0, 0.2], [0.3, 0.3, 0.3, 0.1], [-0.5, 0.0, 2.0, 1.0]],
                              dtype=torch.float64)
ONEHOT_TARGETS = torch.tensor([0, 3, 2])


def test_mse_onehot_mean_is_the_mean_over_classes_then_over_the_batch() -> None:
    per_example = onehot_squared_error_by_hand(ONEHOT_OUTPUTS, ONEHOT_TARGETS)
    # Example 0: (0.01 + 0.01 + 0 + 0.04) / 4 = 0.015, worked out once more by hand.
    assert per_example[0].item() == pytest.approx(0.015)
    got = loss("mse_onehot", "mean")(ONEHOT_OUTPUTS, ONEHOT_TARGETS)
    assert got.item() == pytest.approx(per_example.mean().item(), rel=1e-12)


def test_mse_onehot_sum_is_the_mean_over_classes_summed_over_the_batch() -> None:
    per_example = onehot_squared_error_by_hand(ONEHOT_OUTPUTS, ONEHOT_TARGETS)
    got = loss("mse_onehot", "sum")(ONEHOT_OUTPUTS, ONEHOT_TARGETS)
    assert got.item() == pytest.approx(per_example.sum().item(), rel=1e-12)


def test_mse_onehot_keeps_the_outputs_dtype() -> None:
    outputs = ONEHOT_OUTPUTS.float()
    assert loss("mse_onehot", "mean")(outputs, ONEHOT_TARGETS).dtype == torch.float32


def test_mse_onehot_gradient_is_the_hand_derivative() -> None:
    outputs = ONEHOT_OUTPUTS.clone().requires_grad_(True)
    loss("mse_onehot", "mean")(outputs, ONEHOT_TARGETS).backward()
    n, classes = outputs.shape
    one_hot = torch.zeros(n, classes, dtype=torch.float64)
    one_hot[torch.arange(n), ONEHOT_TARGETS] = 1.0
    # d/do_ij of (1/n) sum_i (1/C) sum_j (o_ij - y_ij)^2 = 2 (o_ij - y_ij) / (n C)
    assert torch.allclose(outputs.grad, 2 * (ONEHOT_OUTPUTS - one_hot) / (n * classes), rtol=1e-12, atol=0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_onehot_gradient_matches_finite_differences(reduction: str) -> None:
    outputs = ONEHOT_OUTPUTS.clone().requires_grad_(True)
    module = loss("mse_onehot", reduction)
    assert torch.autograd.gradcheck(lambda o: module(o, ONEHOT_TARGETS), (outputs,), eps=1e-6, atol=1e-8)
