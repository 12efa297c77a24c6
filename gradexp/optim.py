"""Optimizers, looked up by name; each builder's keyword arguments are the `optimizer` section's keys."""

from __future__ import annotations

from typing import Iterable

import torch

from gradexp.registry import Registry
from gradexp.value_types import Fraction, NonNegativeFloat, PositiveFloat

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
