"""Each fixed clip mode against torch's own clip functions and the articles' rules (docs/clip-modes.md)."""

from __future__ import annotations

import math

import pytest
import torch

from gradexp.clipping import CLIP_MODES
from gradexp.data.base import DataSpec
from gradexp.models import MODELS

NORM_TYPES = [1.0, 2.0, math.inf]
# Every clip builder receives the model; the fixed rules do not read it.
MODEL = MODELS.get("mlp")(DataSpec("regression", (3,), 1), hidden=[3])


def gradients(seed: int = 0, scale: float = 10.0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3, 3), (1, 3), (7,)]
    return [torch.randn(shape, generator=generator) * scale for shape in shapes]


def as_parameters(grads: list[torch.Tensor]) -> list[torch.nn.Parameter]:
    parameters = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for parameter, grad in zip(parameters, grads):
        parameter.grad = grad.clone()
    return parameters


def clipped_by_gradexp(mode: str, grads: list[torch.Tensor], **params) -> tuple[list[torch.Tensor], object]:
    copies = [g.clone() for g in grads]
    outcome = CLIP_MODES.get(mode)(MODEL, **params).clip(copies, [torch.zeros_like(g) for g in grads])
    return copies, outcome


@pytest.mark.parametrize("threshold", [0.5, 3.0, 100.0])
def test_value_matches_clip_grad_value(threshold: float) -> None:
    grads = gradients()
    ours, outcome = clipped_by_gradexp("value", grads, threshold=threshold)
    reference = as_parameters(grads)
    torch.nn.utils.clip_grad_value_(reference, threshold)
    for mine, theirs in zip(ours, reference):
        assert torch.equal(mine, theirs.grad)
    assert bool(outcome.clipped) == any(g.abs().max() > threshold for g in grads)
    assert float(outcome.threshold) == threshold


@pytest.mark.parametrize("norm_type", NORM_TYPES)
@pytest.mark.parametrize("threshold", [0.1, 6.0, 1e4])
def test_global_norm_matches_clip_grad_norm(norm_type: float, threshold: float) -> None:
    grads = gradients(1)
    ours, outcome = clipped_by_gradexp("global_norm", grads, threshold=threshold, norm_type=norm_type)
    reference = as_parameters(grads)
    total = torch.nn.utils.clip_grad_norm_(reference, threshold, norm_type=norm_type)
    for mine, theirs in zip(ours, reference):
        torch.testing.assert_close(mine, theirs.grad, rtol=1e-6, atol=0)
    assert bool(outcome.clipped) == bool(total + 1e-6 > threshold)


@pytest.mark.parametrize("norm_type", NORM_TYPES)
@pytest.mark.parametrize("threshold", [0.5, 5.0, 1e4])
def test_per_tensor_norm_is_clip_grad_norm_on_each_tensor(norm_type: float, threshold: float) -> None:
    grads = gradients(2)
    ours, outcome = clipped_by_gradexp("norm", grads, threshold=threshold, norm_type=norm_type)
    for mine, grad in zip(ours, grads):
        reference = as_parameters([grad])
        torch.nn.utils.clip_grad_norm_(reference, threshold, norm_type=norm_type)
        # torch adds 1e-6 to the norm; the per-tensor rule (tf.clip_by_norm, Paddle ClipGradByNorm) does not.
        torch.testing.assert_close(mine, reference[0].grad, rtol=1e-5, atol=1e-7)
        exact = grad * min(1.0, threshold / float(torch.linalg.vector_norm(grad, norm_type)))
        torch.testing.assert_close(mine, exact, rtol=1e-6, atol=0)
        assert float(torch.linalg.vector_norm(mine, norm_type)) <= threshold * (1 + 1e-6)
    assert bool(outcome.clipped) == any(float(torch.linalg.vector_norm(g, norm_type)) > threshold for g in grads)


def test_per_tensor_norm_scales_each_tensor_independently() -> None:
    # Known norms: (3, 4) has norm 5, (6, 8) has norm 10; threshold 5 leaves the first and halves the second.
    grads = [torch.tensor([3.0, 4.0]), torch.tensor([6.0, 8.0])]
    ours, _ = clipped_by_gradexp("norm", grads, threshold=5.0)
    assert torch.equal(ours[0], torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(ours[1], torch.tensor([3.0, 4.0]))


def test_none_leaves_gradients_untouched() -> None:
    grads = gradients(3)
    ours, outcome = clipped_by_gradexp("none", grads)
    assert all(torch.equal(a, b) for a, b in zip(ours, grads))
    assert not bool(outcome.clipped) and math.isnan(float(outcome.threshold))


def test_zero_gradient_is_not_rescaled_to_nan() -> None:
    ours, outcome = clipped_by_gradexp("norm", [torch.zeros(3), torch.full((2,), 0.5)], threshold=1.0)
    assert torch.equal(ours[0], torch.zeros(3)) and not bool(outcome.clipped)
