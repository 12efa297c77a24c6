"""ZClip: clip total-norm spikes found by a z-score against moving statistics of the norm.

Kumar, Owen, Chowdhury, Güra 2025, "ZClip: Adaptive Spike Mitigation for LLM Pre-Training"
(arXiv 2504.02507), z-score mode with its default reciprocal "adaptive scaling", as the authors'
reference code computes it (github.com/bluorion-com/ZClip, zclip/zclip.py). With n_t the total L2
gradient norm of step t, α = `alpha`, z_thres = `z_threshold`, W = `warmup_steps`:

- Warm-up, t ≤ W: nothing is clipped; at t = W the statistics start from the warm-up norms,
  μ = mean(n_1..n_W) and σ² = mean((n_s − μ)²) (population variance).
- After, t > W:  z_t = (n_t − μ) / (σ + 1e-6).
  A spike is z_t > z_thres; it is clipped to the reciprocal threshold
      c_t = μ + z_thres · σ / (z_t / z_thres) = μ + z_thres² · σ / z_t,
  so the further out the spike, the closer to the mean it is pulled (c_t < μ + z_thres·σ < n_t).
  Every g ← g · c_t / n_t. The statistics then take the clipped norm n'_t (c_t on a spike, else n_t):
      μ ← α μ + (1 − α) n'_t,      σ² ← α σ² + (1 − α) (n'_t − μ)²   (with the μ just updated).

Differences from the reference, on purpose: its optional absolute cap `max_grad_norm` (1.0 there,
applied during warm-up too) is not part of the rule here, so warm-up steps pass untouched; and it
divides by n_t + 1e-6 when rescaling, where here a clipped norm is c_t exactly.

The logged threshold is the largest norm the step lets through: c_t on a spike, otherwise the spike
boundary μ + z_thres·(σ + 1e-6); NaN during warm-up. The two meet (to the 1e-6) as n_t crosses the boundary.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Optional

import torch

from gradexp.clipping import CLIP_MODES
from gradexp.clipping.base import ClipOutcome, constant
from gradexp.clipping.total_norm import rescale_to_norm, total_norm
from gradexp.models.base import Model
from gradexp.value_types import PositiveFloat, PositiveInt, Range

# Added to σ in the z-score, as the reference does, so a constant warm-up (σ = 0) gives finite z.
ZSCORE_EPSILON = 1e-6


class ZClip:
    def __init__(self, alpha: float, z_threshold: float, warmup_steps: int) -> None:
        self.alpha = alpha
        self.z_threshold = z_threshold
        self.warmup_steps = warmup_steps
        self._step = 0
        self._warmup_norms: Optional[torch.Tensor] = None
        self._mean: Optional[torch.Tensor] = None
        self._var: Optional[torch.Tensor] = None

    @torch.no_grad()
    def clip(self, grads: list[torch.Tensor], params: list[torch.Tensor]) -> ClipOutcome:
        norm = total_norm(grads)
        self._step += 1
        if self._step <= self.warmup_steps:
            self._gather(norm)
            return ClipOutcome(threshold=constant(math.nan, norm), clipped=constant(False, norm, torch.bool))
        std = self._var.sqrt()
        z_score = (norm - self._mean) / (std + ZSCORE_EPSILON)
        spike = z_score > self.z_threshold
        reduced = self._mean + self.z_threshold**2 * std / z_score
        boundary = self._mean + self.z_threshold * (std + ZSCORE_EPSILON)
        threshold = torch.where(spike, reduced, boundary)
        clipped = rescale_to_norm(grads, norm, threshold)
        self._update(torch.where(spike, reduced, norm))
        return ClipOutcome(threshold=threshold, clipped=clipped)

    def _gather(self, norm: torch.Tensor) -> None:
        if self._warmup_norms is None:
            seen = norm.reshape(1)
        else:  # a checkpoint loads onto the CPU; the norms may be on a GPU
            seen = torch.cat([self._warmup_norms.to(norm.device), norm.reshape(1)])
        self._warmup_norms = seen
        if self._step == self.warmup_steps:
            self._mean = seen.mean()
            self._var = seen.var(correction=0)

    def _update(self, clipped_norm: torch.Tensor) -> None:
        self._mean = self.alpha * self._mean + (1 - self.alpha) * clipped_norm
        self._var = self.alpha * self._var + (1 - self.alpha) * (clipped_norm - self._mean) ** 2

    def state_dict(self) -> dict[str, Any]:
        """Steps seen, the warm-up norms, and the moving mean and variance (None until warm-up ends)."""
        return {"step": self._step, "warmup_norms": self._warmup_norms, "mean": self._mean, "var": self._var}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._step = state["step"]
        self._warmup_norms, self._mean, self._var = state["warmup_norms"], state["mean"], state["var"]


@CLIP_MODES.register("zclip")
def zclip(model: Model, *, alpha: Annotated[float, Range(gt=0, lt=1)] = 0.97, z_threshold: PositiveFloat = 2.5,
          warmup_steps: PositiveInt = 25) -> ZClip:
    return ZClip(alpha, z_threshold, warmup_steps)
