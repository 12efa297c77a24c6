"""Learning-rate schedules (seed 003's 'learning-rate decay', by epoch or tied to the dev loss), looked up by name.

Every schedule has the same two hooks, called by the runner: `epoch_ended()` after each epoch and
`evaluated(dev)` after each dev evaluation; each rule acts on the one it needs.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import torch

from gradexp.evaluation import Metric
from gradexp.registry import Registry
from gradexp.value_types import Fraction, NonNegativeFloat, NonNegativeInt, PositiveInt

SCHEDULES: Registry = Registry("schedule")


class LearningRateSchedule(Protocol):
    def epoch_ended(self) -> None: ...

    def evaluated(self, dev: dict[str, float]) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ConstantRate:
    def epoch_ended(self) -> None:
        pass

    def evaluated(self, dev: dict[str, float]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


class EpochDecay:
    """A torch scheduler stepped once per epoch (step or exponential decay)."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        self.scheduler = scheduler

    def epoch_ended(self) -> None:
        self.scheduler.step()

    def evaluated(self, dev: dict[str, float]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


class PlateauDecay:
    """Multiply the rate by `factor` when the monitored dev value stops improving (ReduceLROnPlateau)."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau, monitored: str) -> None:
        self.scheduler = scheduler
        self.monitored = monitored

    def epoch_ended(self) -> None:
        pass

    def evaluated(self, dev: dict[str, float]) -> None:
        self.scheduler.step(dev[self.monitored])

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


@SCHEDULES.register("none")
def constant(optimizer: torch.optim.Optimizer, metric: Metric) -> ConstantRate:
    """The learning rate stays as the optimizer section sets it."""
    return ConstantRate()


@SCHEDULES.register("step")
def step(optimizer: torch.optim.Optimizer, metric: Metric, *, every_epochs: PositiveInt = 10,
         gamma: Fraction = 0.1) -> EpochDecay:
    """lr <- lr * gamma every `every_epochs` epochs."""
    return EpochDecay(torch.optim.lr_scheduler.StepLR(optimizer, step_size=every_epochs, gamma=gamma))


@SCHEDULES.register("exponential")
def exponential(optimizer: torch.optim.Optimizer, metric: Metric, *, gamma: Fraction = 0.95) -> EpochDecay:
    """lr <- lr * gamma after every epoch."""
    return EpochDecay(torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma))


@SCHEDULES.register("plateau")
def plateau(optimizer: torch.optim.Optimizer, metric: Metric, *, monitor: Literal["loss", "metric"] = "loss",
            factor: Fraction = 0.1, patience: NonNegativeInt = 2, min_lr: NonNegativeFloat = 0.0) -> PlateauDecay:
    """lr <- lr * factor once the dev loss (or the task metric) has not improved for `patience` evaluations."""
    improving_upwards = monitor == "metric" and metric.higher_is_better
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max" if improving_upwards else "min", factor=factor, patience=patience, min_lr=min_lr)
    return PlateauDecay(scheduler, "loss" if monitor == "loss" else metric.name)
