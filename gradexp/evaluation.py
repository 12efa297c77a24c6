"""Dev/test evaluation: the configured loss (mean over examples) and the task's metric."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from gradexp.data.base import Split


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    # (outputs, targets) -> sum over the batch of the per-example score
    batch_total: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def improves(self, candidate: float, best: float | None) -> bool:
        """Strictly better than `best` (ties keep the earlier checkpoint, as the book's runner does)."""
        if candidate != candidate:  # NaN never improves
            return False
        if best is None:
            return True
        return candidate > best if self.higher_is_better else candidate < best


def _correct(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs.argmax(dim=-1) == targets).sum()


def _squared_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (outputs - targets.reshape(outputs.shape)).pow(2).reshape(len(outputs), -1).mean(dim=1).sum()


TASK_METRICS = {
    "classification": Metric("accuracy", True, _correct),
    "regression": Metric("mse", False, _squared_error),
}

EVALUATION_BATCH = 4096


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, mean_loss: nn.Module, metric: Metric) -> dict[str, float]:
    """Loss (mean reduction) and metric over a whole split, in large batches."""
    was_training = model.training
    model.eval()
    loss_total = split.inputs.new_zeros((), dtype=torch.float64)
    metric_total = split.inputs.new_zeros((), dtype=torch.float64)
    for start in range(0, len(split), EVALUATION_BATCH):
        inputs = split.inputs[start:start + EVALUATION_BATCH]
        targets = split.targets[start:start + EVALUATION_BATCH]
        outputs = model(inputs)
        loss_total += mean_loss(outputs, targets).double() * len(inputs)
        metric_total += metric.batch_total(outputs, targets).double()
    model.train(was_training)
    return {"loss": (loss_total / len(split)).item(), metric.name: (metric_total / len(split)).item()}
