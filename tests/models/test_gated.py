"""The book's LSTM and a GRU in the SRN's place: every gate's parameters, gradients equal to torch's nn.LSTM and
nn.GRU with the weights mapped (float64), gradients through time against finite differences, and vmap."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from gradexp.data.base import DataSpec
from gradexp.errors import ConfigError
from gradexp.models import MODELS

LENGTH, BATCH, CLASSES, INPUT, HIDDEN = 5, 3, 7, 4, 6
SPEC = DataSpec(task="classification", input_shape=(LENGTH,), output_dim=CLASSES, vocab_size=10)
# torch's kernels' gate order, in the book's names
TORCH_ORDER = {"lstm": ("i", "f", "c", "o"), "gru": ("r", "z", "h")}


def model_and_batch(name: str, backend: str = "loop", seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = MODELS.get(name)(SPEC, input_size=INPUT, hidden_size=HIDDEN, backend=backend).double()
    with torch.no_grad():
        for gate in model.rnn_model.gates:
            getattr(model.rnn_model, f"U_{gate}").mul_(3.0)  # strong recurrence: gradients that change along t
    return model, torch.randint(0, 10, (BATCH, LENGTH)), torch.randint(0, CLASSES, (BATCH,))


def summed_loss(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(tokens), labels, reduction="sum")


def test_every_gate_has_its_own_parameters_named_as_in_the_book() -> None:
    lstm, _, _ = model_and_batch("lstm")
    gru, _, _ = model_and_batch("gru")
    for model, gates in ((lstm, "ifoc"), (gru, "zrh")):
        names = {name for name, _ in model.named_parameters()}
        for gate in gates:
            assert {f"rnn_model.W_{gate}", f"rnn_model.U_{gate}", f"rnn_model.b_{gate}"} <= names
            assert tuple(dict(model.named_parameters())[f"rnn_model.U_{gate}"].shape) == (HIDDEN, HIDDEN)
        assert model.recurrent_parameters == tuple(f"rnn_model.U_{gate}" for gate in gates)
        assert {"embedding.weight", "classifier.weight", "classifier.bias"} <= names


def torch_reference(name: str, model: nn.Module) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """nn.LSTM / nn.GRU with the model's weights mapped in (hidden-side biases zero), inside the same embedding
    and classifier: (the kernel, forward over tokens)."""
    rnn = model.rnn_model
    kernel = (nn.LSTM if name == "lstm" else nn.GRU)(INPUT, HIDDEN, batch_first=True).double()
    order = TORCH_ORDER[name]
    with torch.no_grad():
        kernel.weight_ih_l0.copy_(torch.cat([getattr(rnn, f"W_{gate}").t() for gate in order]))
        kernel.weight_hh_l0.copy_(torch.cat([getattr(rnn, f"U_{gate}").t() for gate in order]))
        kernel.bias_ih_l0.copy_(torch.cat([getattr(rnn, f"b_{gate}").reshape(-1) for gate in order]))
        kernel.bias_hh_l0.zero_()
    embedding, classifier = model.embedding, model.classifier

    def forward(tokens: torch.Tensor) -> torch.Tensor:
        outputs = kernel(embedding(tokens))[0]
        return classifier(outputs[:, -1])

    return kernel, forward


@pytest.mark.parametrize("backend", ["loop", "fused"])
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_gradients_equal_torchs_kernel_with_the_weights_mapped(name: str, backend: str) -> None:
    model, tokens, labels = model_and_batch(name, backend)
    kernel, forward = torch_reference(name, model)
    ours = summed_loss(model, tokens, labels)
    theirs = nn.functional.cross_entropy(forward(tokens), labels, reduction="sum")
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)
    ours.backward()
    model_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    theirs.backward()
    rnn = model.rnn_model
    for index, gate in enumerate(TORCH_ORDER[name]):
        rows = slice(index * HIDDEN, (index + 1) * HIDDEN)
        torch.testing.assert_close(model_grads[f"rnn_model.W_{gate}"], kernel.weight_ih_l0.grad[rows].t(), rtol=1e-10,
                                   atol=1e-12)
        torch.testing.assert_close(model_grads[f"rnn_model.U_{gate}"], kernel.weight_hh_l0.grad[rows].t(), rtol=1e-10,
                                   atol=1e-12)
        torch.testing.assert_close(model_grads[f"rnn_model.b_{gate}"].reshape(-1), kernel.bias_ih_l0.grad[rows],
                                   rtol=1e-10, atol=1e-12)
    for shared in ("embedding.weight", "classifier.weight", "classifier.bias"):
        torch.testing.assert_close(model_grads[shared], dict(model.named_parameters())[shared].grad, rtol=1e-10,
                                   atol=1e-12)
    assert rnn.backend == backend


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.filterwarnings("error::UserWarning")  # cuDNN's warning about unpacked weights is ours to keep quiet
@pytest.mark.parametrize("backend", ["loop", "fused"])
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_every_backend_on_cuda_matches_the_loop_on_cpu(name: str, backend: str) -> None:
    on_cpu, tokens, labels = model_and_batch(name, "loop")
    on_gpu, _, _ = model_and_batch(name, backend)
    on_gpu.cuda()
    summed_loss(on_cpu, tokens, labels).backward()
    summed_loss(on_gpu, tokens.cuda(), labels.cuda()).backward()
    for (name_cpu, p_cpu), (_, p_gpu) in zip(on_cpu.named_parameters(), on_gpu.named_parameters()):
        torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad, rtol=1e-9, atol=1e-11, msg=name_cpu)


# Gradients through time -------------------------------------------------------------------------------------

def reference_step(name: str, rnn: nn.Module, x_t: torch.Tensor, hidden: torch.Tensor,
                   cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the book's formulas, written out gate by gate: (h_t, c_t, o_t); c and o unused by the GRU."""
    def gate(g: str, h: torch.Tensor = hidden) -> torch.Tensor:
        return x_t @ getattr(rnn, f"W_{g}") + h @ getattr(rnn, f"U_{g}") + getattr(rnn, f"b_{g}")

    if name == "lstm":
        i, f, o = torch.sigmoid(gate("i")), torch.sigmoid(gate("f")), torch.sigmoid(gate("o"))
        cell = f * cell + i * torch.tanh(gate("c"))
        return o * torch.tanh(cell), cell, o
    z, r = torch.sigmoid(gate("z")), torch.sigmoid(gate("r"))
    candidate = torch.tanh(x_t @ rnn.W_h + rnn.b_h + r * (hidden @ rnn.U_h))
    return z * hidden + (1 - z) * candidate, cell, cell


def loss_after(name: str, model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, t: int, hidden: torch.Tensor,
               cell: torch.Tensor) -> torch.Tensor:
    for s in range(t + 1, LENGTH):
        hidden, cell, _ = reference_step(name, model.rnn_model, inputs[:, s], hidden, cell)
    return nn.functional.cross_entropy(model.classifier(hidden), labels, reduction="sum")


def central_difference_norm(loss: Callable[[torch.Tensor], torch.Tensor], point: torch.Tensor) -> torch.Tensor:
    gradient, epsilon = torch.zeros_like(point), 1e-6
    for index in range(point.numel()):
        step = torch.zeros_like(point).view(-1)
        step[index] = epsilon
        step = step.view_as(point)
        gradient.view(-1)[index] = (loss(point + step) - loss(point - step)) / (2 * epsilon)
    return gradient.norm()


def finite_difference_norms(name: str, model: nn.Module, tokens: torch.Tensor,
                            labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """‖∂L/∂h_t‖ (c_t held) and, for the LSTM, ‖∂L/∂c_t‖ (h_t = o_t ⊙ tanh(c_t) following it) for every t."""
    inputs = model.embedding(tokens)
    hidden = cell = torch.zeros(BATCH, HIDDEN, dtype=torch.float64)
    through_h, through_c = [], []
    with torch.no_grad():
        for t in range(LENGTH):
            hidden, cell, output_gate = reference_step(name, model.rnn_model, inputs[:, t], hidden, cell)
            fixed_cell, fixed_hidden = cell, hidden
            through_h.append(central_difference_norm(
                lambda h: loss_after(name, model, inputs, labels, t, h, fixed_cell), fixed_hidden))
            if name == "lstm":
                through_c.append(central_difference_norm(
                    lambda c: loss_after(name, model, inputs, labels, t, output_gate * torch.tanh(c), c), fixed_cell))
    return torch.stack(through_h), torch.stack(through_c) if through_c else torch.empty(0)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_time_gradients_match_finite_differences_in_float64(name: str) -> None:
    model, tokens, labels = model_and_batch(name)
    probe = model.record_time_gradients()
    probe.enabled = True
    summed_loss(model, tokens, labels).backward()
    expected_h, expected_c = finite_difference_norms(name, model, tokens, labels)
    assert probe.norms.shape == (LENGTH,) and probe.cells == (name == "lstm")
    torch.testing.assert_close(probe.norms, expected_h, rtol=1e-6, atol=1e-9)
    if name == "lstm":
        torch.testing.assert_close(probe.cell_norms, expected_c, rtol=1e-6, atol=1e-9)
    else:
        assert probe.cell_norms is None


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_the_fused_backend_cannot_give_time_gradients_and_says_which_can(name: str) -> None:
    model, _, _ = model_and_batch(name, "fused")
    with pytest.raises(ConfigError, match="record.time_grads: model.backend fused .* use model.backend loop"):
        model.record_time_gradients()


@pytest.mark.parametrize("backend", ["loop", "fused"])
@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_under_vmap_each_point_gets_its_own_gradients(name: str, backend: str) -> None:
    """What a vectorized sweep's batch computes: three points' parameters stacked, one batched gradient (the
    fused backend falls back to its loop there)."""
    models = [model_and_batch(name, backend, seed)[0] for seed in range(3)]
    _, tokens, labels = model_and_batch(name, backend)
    template = models[0]
    names = [parameter_name for parameter_name, _ in template.named_parameters()]
    stacked = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]) for n in names}

    def point_loss(parameters: dict) -> torch.Tensor:
        return nn.functional.cross_entropy(functional_call(template, parameters, (tokens,)), labels,
                                           reduction="sum")

    batched = vmap(grad(point_loss))(stacked)
    for index, model in enumerate(models):
        summed_loss(model, tokens, labels).backward()
        for parameter_name, parameter in model.named_parameters():
            torch.testing.assert_close(batched[parameter_name][index], parameter.grad, rtol=1e-10, atol=1e-12)
