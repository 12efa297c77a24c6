"""‖∂L/∂h_t‖ for every position t, as the SRN's backward leaves it (record.time_grads), against finite differences
of the loss with respect to each hidden state in float64, for every backend that gives it; and under vmap (a
vectorized batch) equal to each point's own."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call, vmap

from gradexp.data.base import DataSpec
from gradexp.errors import ConfigError
from gradexp.models import MODELS

LENGTH, BATCH, CLASSES = 5, 3, 7
SPEC = DataSpec(task="classification", input_shape=(LENGTH,), output_dim=CLASSES, vocab_size=10)


def model_and_batch(backend: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = MODELS.get("srn")(SPEC, input_size=4, hidden_size=6, backend=backend).double()
    with torch.no_grad():
        model.rnn_model.U.mul_(3.0)  # σ_max(U) above 1: the gradients through time grow towards the start
    return model, torch.randint(0, 10, (BATCH, LENGTH)), torch.randint(0, CLASSES, (BATCH,))


def loss_from(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor, t: int, h_t: torch.Tensor) -> torch.Tensor:
    """The loss with the hidden state at position t (0-based) replaced by h_t, the later states recomputed."""
    rnn, inputs = model.rnn_model, model.embedding(tokens)
    hidden = h_t
    for s in range(t + 1, LENGTH):
        hidden = torch.tanh(inputs[:, s] @ rnn.W + hidden @ rnn.U + rnn.b)
    return nn.functional.cross_entropy(model.classifier(hidden), labels, reduction="sum")


def finite_difference_norms(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """‖∂L/∂h_t‖ over batch and units for every t, each coordinate by a central difference."""
    rnn, inputs = model.rnn_model, model.embedding(tokens)
    norms, hidden, epsilon = [], torch.zeros(BATCH, 6, dtype=torch.float64), 1e-6
    with torch.no_grad():
        for t in range(LENGTH):
            hidden = torch.tanh(inputs[:, t] @ rnn.W + hidden @ rnn.U + rnn.b)
            gradient = torch.zeros_like(hidden)
            for index in range(hidden.numel()):
                step = torch.zeros_like(hidden).view(-1)
                step[index] = epsilon
                step = step.view_as(hidden)
                gradient.view(-1)[index] = (loss_from(model, tokens, labels, t, hidden + step)
                                            - loss_from(model, tokens, labels, t, hidden - step)) / (2 * epsilon)
            norms.append(gradient.norm())
    return torch.stack(norms)


@pytest.mark.parametrize("backend", ["bptt", "loop"])
def test_time_gradients_match_finite_differences_in_float64(backend: str) -> None:
    model, tokens, labels = model_and_batch(backend)
    probe = model.record_time_gradients()
    probe.enabled = True
    nn.functional.cross_entropy(model(tokens), labels, reduction="sum").backward()
    expected = finite_difference_norms(model, tokens, labels)
    assert probe.norms.shape == (LENGTH,)
    torch.testing.assert_close(probe.norms, expected, rtol=1e-6, atol=1e-9)
    assert expected[0] > expected[-1]  # grown towards the start: the picture the plots show


def test_nothing_is_measured_while_disabled_and_the_gradients_are_the_same() -> None:
    recorded, tokens, labels = model_and_batch("bptt")
    plain, _, _ = model_and_batch("bptt")
    probe = recorded.record_time_gradients()
    for model in (recorded, plain):
        nn.functional.cross_entropy(model(tokens), labels, reduction="sum").backward()
    assert probe.norms is None
    for (name, ours), theirs in zip(recorded.named_parameters(), plain.parameters()):
        assert torch.equal(ours.grad, theirs.grad), name


def test_the_fused_backend_cannot_and_says_which_can() -> None:
    model, _, _ = model_and_batch("fused")
    with pytest.raises(ConfigError, match="record.time_grads: model.backend fused .* use model.backend bptt or loop"):
        model.record_time_gradients()


def test_a_vmapped_batch_gives_each_points_own_time_gradients() -> None:
    """What a vectorized sweep's batch computes: the points' parameters stacked, one batched backward."""
    models = [model_and_batch("bptt", seed)[0] for seed in range(3)]
    _, tokens, labels = model_and_batch("bptt")
    alone = []
    for model in models:
        probe = model.record_time_gradients()
        probe.enabled = True
        nn.functional.cross_entropy(model(tokens), labels, reduction="sum").backward()
        alone.append(probe.norms)
    template = models[0]
    probe = template.record_time_gradients()
    probe.enabled = True
    names = [name for name, _ in template.named_parameters()]
    stacked = {name: torch.stack([dict(m.named_parameters())[name].detach() for m in models]).requires_grad_()
               for name in names}

    def point_loss(parameters: dict, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(template, parameters, (inputs,)), targets, reduction="sum")

    losses = vmap(point_loss, in_dims=(0, None, None))(stacked, tokens, labels)
    torch.autograd.grad(losses.sum(), list(stacked.values()))
    assert probe.norms.shape == (LENGTH, 3)
    torch.testing.assert_close(probe.norms, torch.stack(alone, dim=1), rtol=1e-9, atol=1e-12)
