"""Plain SGD stepped for many points at once (a vectorized sweep) gives each the bits of its own step."""

from __future__ import annotations

import pytest
import torch

from gradexp.optim import OPTIMIZERS
from gradexp.sweep.backends.vectorized import is_plain_sgd, sgd_steps_together


def model_and_optimizer(seed: int, name: str = "sgd", **settings) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2))
    model(torch.randn(9, 5)).pow(3).sum().backward()
    return model, OPTIMIZERS.get(name)(model.parameters(), **settings)


@pytest.mark.parametrize("name, settings, plain", [
    ("sgd", {"lr": 0.1}, True),
    ("sgd", {"lr": 0.1, "momentum": 0.9}, False),
    ("sgd", {"lr": 0.1, "weight_decay": 1e-4}, False),
    ("adam", {"lr": 0.1}, False),
])
def test_plain_sgd_is_only_sgd_without_momentum_or_decay(name: str, settings: dict, plain: bool) -> None:
    assert is_plain_sgd(model_and_optimizer(0, name, **settings)[1]) is plain


def test_sgd_steps_together_match_each_optimizers_own_step_bit_for_bit() -> None:
    rates = [0.3, 0.01, 0.3, 1e-3]
    together = [model_and_optimizer(seed, lr=rate) for seed, rate in enumerate(rates)]
    alone = [model_and_optimizer(seed, lr=rate) for seed, rate in enumerate(rates)]
    sgd_steps_together([optimizer for _, optimizer in together])
    for (stepped, _), (reference, optimizer) in zip(together, alone):
        before = [p.detach().clone() for p in reference.parameters()]
        optimizer.step()
        for mine, expected, old in zip(stepped.parameters(), reference.parameters(), before):
            assert torch.equal(mine, expected)
            assert not torch.equal(mine, old)
