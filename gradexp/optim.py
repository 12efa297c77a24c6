"""Optimizers, looked up by name; each builder's keyword arguments are the `optimizer` section's keys."""

from __future__ import annotations

from typing import Iterable, Sequence

import torch

from gradexp.config.types import Fraction, NonNegativeFloat, PositiveFloat
from gradexp.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")

Parameters = Iterable[torch.nn.Parameter]


@OPTIMIZERS.register("sgd")
def sgd(
    parameters: Parameters,
    *,
    lr: PositiveFloat,
    momentum: Fraction = 0.0,
    weight_decay: NonNegativeFloat = 0.0,
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


@OPTIMIZERS.register("adam")
def adam(
    parameters: Parameters,
    *,
    lr: PositiveFloat,
    beta1: Fraction = 0.9,
    beta2: Fraction = 0.999,
    eps: PositiveFloat = 1e-8,
    weight_decay: NonNegativeFloat = 0.0,
) -> torch.optim.Optimizer:
    return torch.optim.Adam(parameters, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("rmsprop")
def rmsprop(
    parameters: Parameters,
    *,
    lr: PositiveFloat,
    alpha: Fraction = 0.99,
    eps: PositiveFloat = 1e-8,
    momentum: Fraction = 0.0,
    weight_decay: NonNegativeFloat = 0.0,
) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(parameters, lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay)


def is_plain_sgd(optimizer: torch.optim.Optimizer) -> bool:
    """SGD whose step is p <- p - lr g and nothing more: no momentum or weight decay, so no state either."""
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    return (group["momentum"] == 0 and group["weight_decay"] == 0 and not group["maximize"]
            and not group["differentiable"] and not group["fused"] and not isinstance(group["lr"], torch.Tensor))


@torch.no_grad()
def sgd_steps_together(optimizers: Sequence[torch.optim.Optimizer]) -> None:
    """step() of many plain SGD optimizers (is_plain_sgd) in one update per learning rate.

    p.add_(g, alpha=-lr), as SGD's own step computes it, so the parameters get the same bits; the
    optimizers' own Python (about as long as the update at a small model's sizes) runs not at all.
    """
    by_rate: dict[float, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
    for optimizer in optimizers:
        group = optimizer.param_groups[0]
        parameters, grads = by_rate.setdefault(group["lr"], ([], []))
        for parameter in group["params"]:
            if parameter.grad is not None:
                parameters.append(parameter)
                grads.append(parameter.grad)
    for rate, (parameters, grads) in by_rate.items():
        torch._foreach_add_(parameters, grads, alpha=-rate)
