"""Loss functions, looked up by name. Each builder takes the reduction and returns `loss(outputs, targets)`."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional

from gradexp.registry import Registry

LOSSES: Registry = Registry("loss")

Reduction = Literal["mean", "sum"]


@LOSSES.register("cross_entropy")
def cross_entropy(*, reduction: Reduction = "mean") -> nn.Module:
    """Softmax cross-entropy on class indices (E1 uses reduction 'sum')."""
    return nn.CrossEntropyLoss(reduction=reduction)


class MeanSquaredError(nn.Module):
    def __init__(self, reduction: Reduction) -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return functional.mse_loss(outputs, targets.reshape(outputs.shape), reduction=self.reduction)


class OneHotSquaredError(nn.Module):
    """Squared error between outputs and the one-hot target: E4's loss (mean over classes, then the batch)."""

    def __init__(self, reduction: Reduction) -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        one_hot = functional.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)
        if self.reduction == "mean":  # the mean over classes and batch at once: the same value, torch's rounding
            return functional.mse_loss(outputs, one_hot, reduction="mean")
        return functional.mse_loss(outputs, one_hot, reduction="none").mean(dim=-1).sum()


@LOSSES.register("mse")
def mse(*, reduction: Reduction = "mean") -> nn.Module:
    """Mean squared error for regression (E2, E3)."""
    return MeanSquaredError(reduction)


@LOSSES.register("mse_onehot")
def mse_onehot(*, reduction: Reduction = "mean") -> nn.Module:
    return OneHotSquaredError(reduction)
