"""What a vectorized batch does for all its points at once gives each point the bits of its own call: per-tensor
norm clipping (clip_points) and plain SGD steps (sgd_steps_together)."""

from __future__ import annotations

import math

import pytest
import torch

from gradexp.clipping import CLIP_MODES
from gradexp.optim import OPTIMIZERS
from gradexp.sweep.backends.vectorized import clip_points, is_plain_sgd, sgd_steps_together
from tests.clipping.test_fixed import MODEL, gradients


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


def test_points_clipped_together_get_the_bits_each_gets_alone() -> None:
    """A vectorized sweep clips all its points in one call (clip_points): each point's gradients and outcome
    must be those of its own clip, bit for bit, whatever the others' modes and thresholds."""
    settings = [("norm", {"threshold": 0.5}), ("none", {}), ("norm", {"threshold": 30.0}), ("value", {"threshold": 1.0}),
                ("norm", {"threshold": 3.0, "norm_type": 1.0}), ("norm", {"threshold": 5.0}), ("norm", {"threshold": 1e4})]
    clippers = [CLIP_MODES.get(mode)(MODEL, **params) for mode, params in settings]
    points = [gradients(seed) for seed in range(len(clippers))]
    together = [[g.clone() for g in grads] for grads in points]
    outcomes = clip_points(clippers, together, together)
    for clipper, grads, clipped_together, outcome in zip(clippers, points, together, outcomes):
        alone = [g.clone() for g in grads]
        expected = clipper.clip(alone, alone)
        assert all(torch.equal(a, b) for a, b in zip(clipped_together, alone))
        assert torch.equal(outcome.clipped, expected.clipped)
        assert torch.equal(outcome.threshold, expected.threshold) or math.isnan(float(expected.threshold))
    assert [bool(outcome.clipped) for outcome in outcomes] == [True, False, False, True, True, True, False]
