"""AGC: unit-wise adaptive gradient clipping, relative to the size of the weights.

Brock, De, Smith, Simonyan 2021, "High-Performance Large-Scale Image Recognition Without
Normalization" (NFNets, ICML 2021), section 4.1. For every unit i of every clipped parameter,
with W_i its weights, G_i their gradient, λ = `threshold` and ε = `eps`:

    G_i ← λ · max(‖W_i‖, ε) / ‖G_i‖ · G_i    if ‖G_i‖ > λ · max(‖W_i‖, ε),    else G_i unchanged.

A unit is what the authors' reference code (deepmind-research, nfnets/agc_optax.py, `unitwise_norm`)
takes it to be: a parameter that is a vector once its size-1 axes are squeezed (a bias, a gain, the
SRN's b of shape 1 × hidden) is ONE unit, normed over the whole tensor; a matrix or kernel has one
unit per output, normed over every other axis. Which axis holds the outputs depends on the layout:

- nn.Linear, nn.Bilinear, nn.Conv1d/2d/3d weights: axis 0 (torch stores out × in), so a unit is a row;
- nn.Embedding (vocab × dim): axis 1. As a linear map from one-hot tokens to features its outputs are
  the dim features, so a unit is a column, which is also what the reference computes on Haiku's
  (vocab, dim) embedding table;
- any other parameter: the model declares it (gradexp.models.base.Model): `output_axes` maps dotted
  parameter names to their output axis (the SRN stores W and U as in × hidden, so the SRN model
  declares `{"rnn_model.W": 1, "rnn_model.U": 1}`: its units are columns).

The clipper learns this once, at construction, from the model its builder receives (as every clip
builder does); then each step is a norm per parameter, one vector of unit norms and one in-place
multiply. `exclude` lists parameters to leave alone, by glob on the dotted name or by module name
(the paper does not clip the final linear layer: `exclude: [classifier]`). The logged threshold is λ.
"""

from __future__ import annotations

import fnmatch
from typing import Optional

import torch
from torch import nn

from gradexp.clipping import CLIP_MODES
from gradexp.clipping.base import ClipOutcome, Stateless, constant
from gradexp.errors import ConfigError
from gradexp.models.base import Model
from gradexp.value_types import PositiveFloat

# Where torch's own layers keep their output units.
OUTPUT_AXIS_BY_LAYER: dict[type[nn.Module], int] = {
    nn.Linear: 0,
    nn.Bilinear: 0,
    nn.Conv1d: 0,
    nn.Conv2d: 0,
    nn.Conv3d: 0,
    nn.Embedding: 1,
}

# A unit is the whole tensor; torch.linalg.vector_norm reads dim=None that way.
WHOLE_TENSOR = None


def output_axis(model: Model, name: str, module: nn.Module, local_name: str, parameter: torch.Tensor
                ) -> Optional[int]:
    """The axis of `parameter` (`name` in `model`, `local_name` in `module`) that indexes its units, or WHOLE_TENSOR."""
    if parameter.squeeze().dim() <= 1:
        return WHOLE_TENSOR
    if name in model.output_axes:
        return model.output_axes[name]
    for layer, axis in OUTPUT_AXIS_BY_LAYER.items():
        if isinstance(module, layer) and local_name == "weight":
            return axis
    raise ConfigError("", "clip.mode", f"agc clips each output unit, but {type(module).__name__} does not say "
                                       f"which axis of its parameter {local_name!r} {tuple(parameter.shape)} holds "
                                       f"them; declare `output_axes = {{{name!r}: AXIS}}` on the model, or "
                                       f"leave it out with clip.exclude")


def is_excluded(name: str, patterns: list[str]) -> bool:
    """A pattern names a parameter (glob on the dotted name) or a module, whose parameters it all covers."""
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, f"{p}.*") for p in patterns)


class AdaptiveGradientClip(Stateless):
    """AGC for `model`'s parameters; `clip` takes them in `named_parameters()` order."""

    def __init__(self, model: Model, threshold: float, eps: float, exclude: list[str]) -> None:
        self.threshold = threshold
        self.eps = eps
        self.exclude = exclude
        owners = {f"{prefix}.{local}" if prefix else local: (module, local)
                  for prefix, module in model.named_modules() for local, _ in module.named_parameters(recurse=False)}
        named = list(model.named_parameters())
        for pattern in exclude:
            if not any(is_excluded(name, [pattern]) for name, _ in named):
                raise ConfigError("", "clip.exclude", f"{pattern!r} matches no parameter; the model has "
                                                      f"{', '.join(name for name, _ in named)}")
        # Positions of the clipped parameters in the model's parameter list, and the axes each unit norm runs over.
        self._clipped_positions: list[int] = []
        self._norm_axes: list[Optional[tuple[int, ...]]] = []
        for position, (name, parameter) in enumerate(named):
            if is_excluded(name, exclude):
                continue
            axis = output_axis(model, name, *owners[name], parameter)
            self._clipped_positions.append(position)
            self._norm_axes.append(
                None if axis is WHOLE_TENSOR else tuple(d for d in range(parameter.dim()) if d != axis))
        if not self._clipped_positions:
            raise ConfigError("", "clip.exclude", "excludes every parameter, so agc would clip nothing")

    @torch.no_grad()
    def clip(self, grads: list[torch.Tensor], params: list[torch.Tensor]) -> ClipOutcome:
        chosen_grads = [grads[i] for i in self._clipped_positions]
        # In float64, as the runner records norms, so a clipped unit is recorded at its limit.
        grad_norms = [torch.linalg.vector_norm(g, dim=axes, keepdim=True, dtype=torch.float64)
                      for g, axes in zip(chosen_grads, self._norm_axes)]
        weight_norms = [torch.linalg.vector_norm(params[i], dim=axes, keepdim=True, dtype=torch.float64)
                        for i, axes in zip(self._clipped_positions, self._norm_axes)]
        # Every unit of every parameter side by side, so the rule is a handful of vector operations.
        unit_grad_norms = torch.cat([n.reshape(-1) for n in grad_norms])
        limits = self.threshold * torch.cat([n.reshape(-1) for n in weight_norms]).clamp_min(self.eps)
        exceeds = unit_grad_norms > limits
        # Units over the limit have ‖G_i‖ > λε > 0, so the division that matters is never by zero.
        scales = torch.where(exceeds, limits / unit_grad_norms, 1.0)
        per_parameter = scales.split([n.numel() for n in grad_norms])
        torch._foreach_mul_(chosen_grads, [s.view(n.shape) for s, n in zip(per_parameter, grad_norms)])
        return ClipOutcome(threshold=constant(self.threshold, grads[0]), clipped=exceeds.any())


@CLIP_MODES.register("agc")
def agc(model: Model, *, threshold: PositiveFloat, eps: PositiveFloat = 1e-3, exclude: Optional[list[str]] = None
        ) -> AdaptiveGradientClip:
    return AdaptiveGradientClip(model, threshold, eps, exclude or [])
