"""Fixed-threshold clip modes, as the articles state them (docs/clip-modes.md has the table).

| mode        | rule                                                          | same as |
| value c     | g <- clamp(g, -c, c) element-wise                             | clip_grad_value_, Keras clipvalue |
| norm c      | for each tensor: g <- g * min(1, c / ||g||_p)                 | Keras 3 clipnorm, tf.clip_by_norm, Paddle ClipGradByNorm |
| global_norm | n = ||(||g_1||_p, ..., ||g_k||_p)||_p; g <- g * min(1, c/(n + 1e-6)) | torch clip_grad_norm_, tf.clip_by_global_norm |
"""

from __future__ import annotations

import math

import torch

from gradexp.clipping import CLIP_MODES
from gradexp.clipping.base import ClipOutcome, Stateless, constant
from gradexp.models.base import Model
from gradexp.value_types import NormType, PositiveFloat

# torch.nn.utils.clip_grad_norm_ adds this to the total norm before dividing.
GLOBAL_NORM_EPSILON = 1e-6


class NoClip(Stateless):
    """Identity: gradients pass unchanged."""

    def clip(self, grads: list[torch.Tensor], params: list[torch.Tensor]) -> ClipOutcome:
        return ClipOutcome(threshold=constant(math.nan, grads[0]), clipped=constant(False, grads[0], torch.bool))


class ValueClip(Stateless):
    """Element-wise clamp to [-threshold, threshold]."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def clip(self, grads: list[torch.Tensor], params: list[torch.Tensor]) -> ClipOutcome:
        largest = torch.stack(torch._foreach_norm(grads, math.inf)).max()
        torch._foreach_clamp_min_(grads, -self.threshold)
        torch._foreach_clamp_max_(grads, self.threshold)
        return ClipOutcome(threshold=constant(self.threshold, grads[0]), clipped=largest > self.threshold)


class PerTensorNormClip(Stateless):
    """Each tensor rescaled by its own p-norm to at most `threshold`."""

    def __init__(self, threshold: float, norm_type: float) -> None:
        self.threshold = threshold
        self.norm_type = norm_type

    def clip(self, grads: list[torch.Tensor], params: list[torch.Tensor]) -> ClipOutcome:
        threshold = constant(self.threshold, grads[0])
        (clipped,) = clip_tensor_norms(grads, threshold.reshape(1, 1), self.norm_type).unbind(0)
        return ClipOutcome(threshold=threshold, clipped=clipped)


def clip_tensor_norms(grads: list[torch.Tensor], thresholds: torch.Tensor, norm_type: float) -> torch.Tensor:
    """g <- g * min(1, c / ||g||_p) in place for every tensor, the tensors of one or more points in a row.

    thresholds: (points, 1) float64, each point's c; the tensors are split evenly among the points. Returns
    (points,) bool: whether any of a point's tensors was clipped. One norm call and one multiply for all of
    them, so a vectorized sweep clips all its points with the arithmetic of each point's own clip.
    """
    like = grads[0]
    # float64 norms: a float32 norm can be low by an ulp, leaving the clipped norm just above the threshold.
    norms = torch.stack(torch._foreach_norm(grads, norm_type, dtype=torch.float64)).view(len(thresholds), -1)
    scales = (thresholds / norms).clamp(max=1.0).to(like.dtype)
    torch._foreach_mul_(grads, list(scales.flatten().unbind(0)))
    return (norms > thresholds).any(dim=1)


class GlobalNormClip(Stateless):
    """All tensors rescaled together so their joint p-norm is at most `threshold`."""

    def __init__(self, threshold: float, norm_type: float) -> None:
        self.threshold = threshold
        self.norm_type = norm_type

    def clip(self, grads: list[torch.Tensor], params: list[torch.Tensor]) -> ClipOutcome:
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, self.norm_type)), self.norm_type)
        coefficient = self.threshold / (total + GLOBAL_NORM_EPSILON)
        torch._foreach_mul_(grads, coefficient.clamp(max=1.0))
        return ClipOutcome(threshold=constant(self.threshold, grads[0]), clipped=coefficient < 1.0)


@CLIP_MODES.register("none")
def no_clip(model: Model) -> NoClip:
    return NoClip()


@CLIP_MODES.register("value")
def value(model: Model, *, threshold: PositiveFloat) -> ValueClip:
    return ValueClip(threshold)


@CLIP_MODES.register("norm")
def norm(model: Model, *, threshold: PositiveFloat, norm_type: NormType = 2.0) -> PerTensorNormClip:
    return PerTensorNormClip(threshold, norm_type)


@CLIP_MODES.register("global_norm")
def global_norm(model: Model, *, threshold: PositiveFloat, norm_type: NormType = 2.0) -> GlobalNormClip:
    return GlobalNormClip(threshold, norm_type)
