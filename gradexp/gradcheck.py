"""Gradient checking (seed 003): backprop gradients against central finite differences, in float64.

For every parameter tensor p and a set S of its coordinates,

    numeric_i = (J(theta + eps e_i) - J(theta - eps e_i)) / (2 eps)            for i in S
    error(p)  = ||g_S - numeric_S|| / (||g_S|| + ||numeric_S||)                (0 when both are 0)

where g is the backprop gradient and J the config's loss summed over a few small training batches.
seed 003 (after Ng's course) reads error < 1e-7 as "the gradient code is right".

One step size cannot serve every tensor. A central difference is off by its truncation error,
about eps^2 |J'''| / 6, and by rounding, about u |J| / eps (u = 2^-53 in float64). At eps = 1e-6 the
rounding term is ~1e-10 per coordinate: negligible beside ordinary gradients, but it swamps a
gradient that has vanished to ~1e-5 of the loss, exactly what E5's deep sigmoid stack shows in its
first layers. A coarse step (1e-2) resolves those, and Richardson extrapolation of two coarse
differences, (4 D(eps/2) - D(eps)) / 3, cancels the eps^2 truncation term (Richardson 1911); but a
coarse step can straddle a ReLU kink, where only a fine step is exact. So each tensor is checked at
both steps and its error is the smaller of the two; the result says which one agreed. A wrong
gradient agrees with neither: each estimate is within its own small error of the true derivative.
The fine step's rounding floor grows with |J| / |g|: E2's unscaled regression (MSE ~ 2e4) checks at
~5e-8, close to the threshold; a larger fine step would lower it but lands on ReLU kinks (E3's net
fails at eps = 1e-5 for seed 0).

Large tensors are checked on `max_coordinates` coordinates drawn without replacement from the run's
seed (every coordinate of smaller ones), which keeps a check to seconds: each coordinate costs six
evaluations of J.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Protocol, Sequence

import torch
from torch import nn

from gradexp.config.schema import ExperimentConfig
from gradexp.data.base import Split
from gradexp.experiment import build_experiment
from gradexp.threads import torch_threads

Objective = Callable[[], torch.Tensor]
Step = Literal["fine", "coarse"]


@dataclass(frozen=True)
class ParameterCheck:
    name: str
    # Coordinates compared, out of the tensor's `size`.
    checked: int
    size: int
    backprop_norm: float
    numeric_norm: float
    relative_error: float
    # The step whose differences gave `relative_error` (the smaller of the two).
    step: Step


@dataclass(frozen=True)
class GradientCheck:
    parameters: tuple[ParameterCheck, ...]
    threshold: float
    epsilon: float
    coarse_epsilon: float
    batches: int
    batch_size: int

    @property
    def worst(self) -> ParameterCheck:
        return max(self.parameters, key=lambda check: check.relative_error)

    @property
    def passed(self) -> bool:
        return all(check.relative_error <= self.threshold for check in self.parameters)


def relative_error(backprop: torch.Tensor, numeric: torch.Tensor) -> float:
    """||a - b|| / (||a|| + ||b||), defined as 0 when both are zero (a dead unit's gradient)."""
    scale = backprop.norm() + numeric.norm()
    return 0.0 if scale == 0 else ((backprop - numeric).norm() / scale).item()


@torch.no_grad()
def central_differences(objective: Objective, parameter: torch.Tensor, coordinates: torch.Tensor,
                        epsilon: float) -> torch.Tensor:
    """(J(theta + eps e_i) - J(theta - eps e_i)) / 2 eps for each listed coordinate i of `parameter`."""
    flat = parameter.view(-1)
    estimates = torch.empty(len(coordinates), dtype=torch.float64)
    for slot, index in enumerate(coordinates.tolist()):
        original = flat[index].item()
        flat[index] = original + epsilon
        above = objective().item()
        flat[index] = original - epsilon
        below = objective().item()
        flat[index] = original
        estimates[slot] = (above - below) / (2 * epsilon)
    return estimates


def richardson_differences(objective: Objective, parameter: torch.Tensor, coordinates: torch.Tensor,
                           epsilon: float) -> torch.Tensor:
    """(4 D(eps/2) - D(eps)) / 3: central differences with their eps^2 error term cancelled."""
    half = central_differences(objective, parameter, coordinates, epsilon / 2)
    return (4 * half - central_differences(objective, parameter, coordinates, epsilon)) / 3


def sampled_coordinates(size: int, limit: int, generator: torch.Generator) -> torch.Tensor:
    """Every coordinate when there are at most `limit`, else `limit` distinct ones drawn at random (sorted)."""
    if size <= limit:
        return torch.arange(size)
    return torch.randperm(size, generator=generator)[:limit].sort().values


class CheckProgress(Protocol):
    """How a gradient check tells the outside world about its progress (the CLI prints each row as it comes):
    a large tensor's differences take seconds to minutes."""

    def started(self, names: Sequence[str]) -> None: ...

    def checked(self, check: ParameterCheck) -> None: ...


class SilentProgress:
    def started(self, names: Sequence[str]) -> None:
        pass

    def checked(self, check: ParameterCheck) -> None:
        pass


def check_gradients(model: nn.Module, loss: nn.Module, batches: Sequence[Split], *, epsilon: float = 1e-6,
                    coarse_epsilon: float = 1e-2, threshold: float = 1e-7, max_coordinates: int = 64,
                    seed: int = 0, progress: Optional[CheckProgress] = None) -> GradientCheck:
    """Compare `model`'s backprop gradients of J = sum over `batches` of loss(model(x), y) with finite differences.

    The model is checked as it trains (train mode: batch norm uses batch statistics) and in its own
    dtype; pass a float64 model, as `check_config` does, for differences accurate enough to judge 1e-7.
    `progress` hears the parameter names first, then each parameter's check as soon as it is done.
    """
    progress = progress or SilentProgress()
    model.train()

    def objective() -> torch.Tensor:
        return sum(loss(model(batch.inputs), batch.targets) for batch in batches)

    named = list(model.named_parameters())
    progress.started([name for name, _ in named])
    model.zero_grad(set_to_none=True)
    objective().backward()
    generator = torch.Generator().manual_seed(seed)
    checks = []
    for name, parameter in named:
        coordinates = sampled_coordinates(parameter.numel(), max_coordinates, generator)
        backprop = parameter.grad.reshape(-1)[coordinates].double()
        estimates = {
            "fine": central_differences(objective, parameter, coordinates, epsilon),
            "coarse": richardson_differences(objective, parameter, coordinates, coarse_epsilon),
        }
        errors = {step: relative_error(backprop, numeric) for step, numeric in estimates.items()}
        step: Step = min(errors, key=errors.__getitem__)
        checks.append(ParameterCheck(name=name, checked=len(coordinates), size=parameter.numel(),
                                     backprop_norm=backprop.norm().item(), numeric_norm=estimates[step].norm().item(),
                                     relative_error=errors[step], step=step))
        progress.checked(checks[-1])
    return GradientCheck(parameters=tuple(checks), threshold=threshold, epsilon=epsilon,
                         coarse_epsilon=coarse_epsilon, batches=len(batches),
                         batch_size=len(batches[0]) if batches else 0)


def leading_batches(split: Split, count: int, size: int) -> list[Split]:
    """The first `count` consecutive batches of `size` rows (fewer when the split runs out)."""
    rows = min(len(split), count * size)
    return [Split(split.inputs[start:start + size], split.targets[start:start + size])
            for start in range(0, rows, size)]


def check_config(config: ExperimentConfig, *, batches: int = 2, batch_size: int = 8, epsilon: float = 1e-6,
                 coarse_epsilon: float = 1e-2, threshold: float = 1e-7, max_coordinates: int = 64,
                 progress: Optional[CheckProgress] = None) -> GradientCheck:
    """Build `config`'s data, model and loss in float64 on the CPU and check the model's gradients.

    The batches are the first rows of the training split (for E3's fresh-every-epoch data, its fixed draw).
    Torch computes with the config's train.threads (1 unless set), as `gradexp run` trains.
    """
    float64 = dataclasses.replace(config, train=dataclasses.replace(config.train, dtype="float64", device="cpu"))
    experiment = build_experiment(float64)
    train = experiment.dataset.train.to(experiment.device, experiment.dtype)
    with torch_threads(config.train.threads):
        return check_gradients(experiment.model, experiment.train_loss, leading_batches(train, batches, batch_size),
                               epsilon=epsilon, coarse_epsilon=coarse_epsilon, threshold=threshold,
                               max_coordinates=max_coordinates, seed=config.train.seed, progress=progress)
