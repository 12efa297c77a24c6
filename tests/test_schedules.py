"""Learning-rate schedules against torch's own schedulers driven directly, and the hand formulas."""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

from gradexp.evaluation import TASK_METRICS
from gradexp.schedules import SCHEDULES

ACCURACY = TASK_METRICS["classification"]
MSE = TASK_METRICS["regression"]
INITIAL_LR = 0.8


def make_optimizer(lr: float = INITIAL_LR) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=lr)


def rate(optimizer: torch.optim.Optimizer) -> float:
    return optimizer.param_groups[0]["lr"]


def run_epochs(schedule: Any, optimizer: torch.optim.Optimizer, epochs: int) -> list[float]:
    """The rate in force during each epoch, the schedule hearing of each epoch's end."""
    rates = []
    for _ in range(epochs):
        rates.append(rate(optimizer))
        optimizer.step()  # as the runner does; torch warns when a scheduler steps before its optimizer
        schedule.epoch_ended()
    return rates


def run_torch_epochs(scheduler: torch.optim.lr_scheduler.LRScheduler, epochs: int) -> list[float]:
    rates = []
    for _ in range(epochs):
        rates.append(rate(scheduler.optimizer))
        scheduler.optimizer.step()
        scheduler.step()
    return rates


def run_evaluations(schedule: Any, optimizer: torch.optim.Optimizer, devs: list[dict[str, float]]) -> list[float]:
    """The rate after each evaluation."""
    rates = []
    for dev in devs:
        schedule.evaluated(dev)
        rates.append(rate(optimizer))
    return rates


@pytest.mark.parametrize("every_epochs, gamma", [(3, 0.5), (1, 0.9), (4, 0.1)])
def test_step_decay_matches_torch_step_lr_and_the_hand_formula(every_epochs: int, gamma: float) -> None:
    optimizer = make_optimizer()
    schedule = SCHEDULES.get("step")(optimizer, ACCURACY, every_epochs=every_epochs, gamma=gamma)
    ours = run_epochs(schedule, optimizer, 13)

    twin = torch.optim.lr_scheduler.StepLR(make_optimizer(), step_size=every_epochs, gamma=gamma)
    assert ours == run_torch_epochs(twin, 13)
    assert ours == pytest.approx([INITIAL_LR * gamma ** (epoch // every_epochs) for epoch in range(13)], rel=1e-12)


def test_step_decay_defaults_divide_by_ten_every_ten_epochs() -> None:
    optimizer = make_optimizer()
    ours = run_epochs(SCHEDULES.get("step")(optimizer, ACCURACY), optimizer, 21)
    assert ours == pytest.approx([INITIAL_LR] * 10 + [INITIAL_LR * 0.1] * 10 + [INITIAL_LR * 0.01], rel=1e-12)


@pytest.mark.parametrize("gamma", [0.95, 0.5])
def test_exponential_decay_matches_torch_exponential_lr_and_the_hand_formula(gamma: float) -> None:
    optimizer = make_optimizer()
    schedule = SCHEDULES.get("exponential")(optimizer, ACCURACY, gamma=gamma)
    ours = run_epochs(schedule, optimizer, 12)

    twin = torch.optim.lr_scheduler.ExponentialLR(make_optimizer(), gamma=gamma)
    assert ours == run_torch_epochs(twin, 12)
    assert ours == pytest.approx([INITIAL_LR * gamma ** epoch for epoch in range(12)], rel=1e-12)


@pytest.mark.parametrize("name, settings", [("step", {"every_epochs": 1, "gamma": 0.5}),
                                            ("exponential", {"gamma": 0.5})])
def test_epoch_schedules_ignore_evaluations(name: str, settings: dict[str, Any]) -> None:
    optimizer = make_optimizer()
    schedule = SCHEDULES.get(name)(optimizer, ACCURACY, **settings)
    for loss in [5.0, 5.0, 5.0, 5.0, 5.0]:
        schedule.evaluated({"loss": loss, "accuracy": 0.1})
    assert rate(optimizer) == INITIAL_LR


def test_none_never_changes_the_rate() -> None:
    optimizer = make_optimizer()
    schedule = SCHEDULES.get("none")(optimizer, ACCURACY)
    assert run_epochs(schedule, optimizer, 5) == [INITIAL_LR] * 5
    assert run_evaluations(schedule, optimizer, [{"loss": 1.0, "accuracy": 0.5}] * 6) == [INITIAL_LR] * 6
    schedule.load_state_dict(schedule.state_dict())
    assert rate(optimizer) == INITIAL_LR


LOSSES_SEQUENCE = [1.0, 0.9, 0.9, 0.95, 0.91, 0.8, 0.85, 0.85, 0.85, 0.85, 0.7, 0.7, 0.7, 0.7, 0.7]


@pytest.mark.parametrize("patience, factor, min_lr", [(2, 0.1, 0.0), (0, 0.5, 0.1), (1, 0.5, 0.0)])
def test_plateau_on_the_loss_matches_torch_reduce_on_plateau(patience: int, factor: float, min_lr: float) -> None:
    optimizer = make_optimizer()
    schedule = SCHEDULES.get("plateau")(optimizer, ACCURACY, monitor="loss", factor=factor, patience=patience,
                                        min_lr=min_lr)
    # The accuracy moves against the loss: only the loss may count.
    devs = [{"loss": loss, "accuracy": loss} for loss in LOSSES_SEQUENCE]
    ours = run_evaluations(schedule, optimizer, devs)

    twin_optimizer = make_optimizer()
    twin = torch.optim.lr_scheduler.ReduceLROnPlateau(twin_optimizer, mode="min", factor=factor, patience=patience,
                                                      min_lr=min_lr)
    expected = []
    for loss in LOSSES_SEQUENCE:
        twin.step(loss)
        expected.append(rate(twin_optimizer))
    assert ours == expected
    assert min(ours) < INITIAL_LR  # the sequence does plateau
    assert min(ours) >= min_lr


def test_plateau_on_the_loss_by_hand() -> None:
    optimizer = make_optimizer()
    schedule = SCHEDULES.get("plateau")(optimizer, ACCURACY, monitor="loss", factor=0.5, patience=1)
    # best 1.0; 0.5 improves; 0.6 bad (1); 0.5 a tie, bad (2 > patience): halve and start counting again.
    ours = run_evaluations(schedule, optimizer, [{"loss": v, "accuracy": 0.0} for v in [1.0, 0.5, 0.6, 0.5, 0.4]])
    assert ours == pytest.approx([0.8, 0.8, 0.8, 0.4, 0.4])


def test_plateau_ignores_epoch_ends() -> None:
    optimizer = make_optimizer()
    schedule = SCHEDULES.get("plateau")(optimizer, ACCURACY, patience=0)
    assert run_epochs(schedule, optimizer, 6) == [INITIAL_LR] * 6


def test_plateau_on_accuracy_keeps_the_rate_while_accuracy_rises() -> None:
    optimizer = make_optimizer()
    schedule = SCHEDULES.get("plateau")(optimizer, ACCURACY, monitor="metric", factor=0.5, patience=0)
    # The loss rises meanwhile; a schedule reading the loss, or minimising accuracy, would cut the rate.
    devs = [{"loss": 1.0 + i, "accuracy": 0.5 + 0.05 * i} for i in range(8)]
    assert run_evaluations(schedule, optimizer, devs) == [INITIAL_LR] * 8


def test_plateau_on_accuracy_reduces_when_accuracy_stops_rising() -> None:
    optimizer = make_optimizer()
    schedule = SCHEDULES.get("plateau")(optimizer, ACCURACY, monitor="metric", factor=0.5, patience=1)
    accuracies = [0.5, 0.6, 0.6, 0.55, 0.7, 0.65, 0.65, 0.65]
    # The loss falls meanwhile; a schedule reading the loss would never cut the rate.
    devs = [{"loss": 1.0 - 0.1 * i, "accuracy": a} for i, a in enumerate(accuracies)]
    ours = run_evaluations(schedule, optimizer, devs)
    # 0.6 improves; 0.6 tie (bad 1); 0.55 (bad 2): halve; 0.7 improves; 0.65, 0.65 (bad 2): halve; 0.65 (bad 1).
    assert ours == pytest.approx([0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2])

    twin_optimizer = make_optimizer()
    twin = torch.optim.lr_scheduler.ReduceLROnPlateau(twin_optimizer, mode="max", factor=0.5, patience=1)
    expected = []
    for accuracy in accuracies:
        twin.step(accuracy)
        expected.append(rate(twin_optimizer))
    assert ours == expected


def test_plateau_on_a_lower_is_better_metric_minimises_it() -> None:
    optimizer = make_optimizer()
    schedule = SCHEDULES.get("plateau")(optimizer, MSE, monitor="metric", factor=0.5, patience=0)
    # The dev mse falls while the loss column rises: the rate stays; then the mse rises: halve.
    devs = [{"loss": float(i), "mse": 1.0 / (i + 1)} for i in range(5)] + [{"loss": 0.0, "mse": 2.0}]
    assert run_evaluations(schedule, optimizer, devs) == pytest.approx([0.8] * 5 + [0.4])


def through_a_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """As a resume point stores it: torch.save, then torch.load(weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


PLATEAU_DEVS = [{"loss": loss, "accuracy": 1.0 - loss} for loss in LOSSES_SEQUENCE]


@pytest.mark.parametrize("name, settings", [
    ("step", {"every_epochs": 3, "gamma": 0.5}),
    ("exponential", {"gamma": 0.7}),
    ("plateau", {"monitor": "loss", "factor": 0.5, "patience": 1}),
    ("plateau", {"monitor": "metric", "factor": 0.5, "patience": 2, "min_lr": 0.15}),
])
@pytest.mark.parametrize("stop_after", [1, 4, 8])
def test_a_schedule_restored_midway_continues_as_the_uninterrupted_one(
        name: str, settings: dict[str, Any], stop_after: int) -> None:
    """Epoch end and evaluation alternate; resume builds a fresh optimizer and schedule, then loads both states."""

    def drive(schedule: Any, optimizer: torch.optim.Optimizer, rounds: range) -> list[float]:
        rates = []
        for index in rounds:
            optimizer.step()
            schedule.epoch_ended()
            schedule.evaluated(PLATEAU_DEVS[index])
            rates.append(rate(optimizer))
        return rates

    rounds = len(PLATEAU_DEVS)
    optimizer = make_optimizer()
    schedule = SCHEDULES.get(name)(optimizer, ACCURACY, **settings)
    uninterrupted = drive(schedule, optimizer, range(rounds))
    assert len(set(uninterrupted)) > 2  # the rate does change along the way

    first_optimizer = make_optimizer()
    first = SCHEDULES.get(name)(first_optimizer, ACCURACY, **settings)
    before = drive(first, first_optimizer, range(stop_after))
    point = through_a_checkpoint({"optimizer": first_optimizer.state_dict(), "schedule": first.state_dict()})

    resumed_optimizer = make_optimizer()
    resumed = SCHEDULES.get(name)(resumed_optimizer, ACCURACY, **settings)
    resumed_optimizer.load_state_dict(point["optimizer"])
    resumed.load_state_dict(point["schedule"])
    after = drive(resumed, resumed_optimizer, range(stop_after, rounds))

    assert before + after == uninterrupted
    assert resumed.state_dict() == schedule.state_dict()
