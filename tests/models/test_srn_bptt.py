"""The SRN's backends: the same recurrence from the same W, U and b, differentiated three ways.

`loop` (the book's loop, differentiated by autograd) is the reference; `bptt` (backpropagation
through time written out by hand) and `fused` (torch's RNN kernel) must match it in float64, and
each must match finite differences on its own.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from gradexp.config.loading import load_config
from gradexp.data.base import DataSpec
from gradexp.errors import ConfigError
from gradexp.models import MODELS
from gradexp.models.srn import RECURRENCES, loop_recurrence, token_recurrence
from gradexp.runner import run

SPEC = DataSpec(task="classification", input_shape=(9,), output_dim=19, vocab_size=10)
FAST_BACKENDS = ("bptt", "fused")


def twin_models(input_size: int, hidden_size: int, backend: str,
                dtype: torch.dtype = torch.float64) -> tuple[nn.Module, nn.Module]:
    """A loop-backend model and one of `backend` holding the very same parameter values."""
    torch.manual_seed(3)
    loop = MODELS.get("srn")(SPEC, input_size=input_size, hidden_size=hidden_size, backend="loop").to(dtype)
    other = MODELS.get("srn")(SPEC, input_size=input_size, hidden_size=hidden_size, backend=backend).to(dtype)
    other.load_state_dict(loop.state_dict())
    return loop, other


def test_the_default_backend_is_bptt() -> None:
    assert MODELS.get("srn")(SPEC).rnn_model.recurrence is RECURRENCES["bptt"]


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_every_backend_has_the_same_parameters_under_the_same_names(backend: str) -> None:
    loop, other = twin_models(6, 5, backend)
    assert [(n, p.shape) for n, p in loop.named_parameters()] == [(n, p.shape) for n, p in other.named_parameters()]
    assert set(loop.state_dict()) == set(other.state_dict())


def test_every_backend_computes_torch_rnn_with_w_u_b_mapped() -> None:
    """nn.RNN(tanh) with weight_ih = W^T, weight_hh = U^T, bias_ih = b, bias_hh = 0 gives the same last state."""
    torch.manual_seed(0)
    W, U, b = torch.randn(3, 4), torch.randn(4, 4), torch.randn(1, 4)
    inputs = torch.randn(2, 6, 3)
    reference = nn.RNN(3, 4, nonlinearity="tanh", batch_first=True)
    with torch.no_grad():
        reference.weight_ih_l0.copy_(W.t())
        reference.weight_hh_l0.copy_(U.t())
        reference.bias_ih_l0.copy_(b[0])
        reference.bias_hh_l0.zero_()
    _, last = reference(inputs)
    for backend, recurrence in RECURRENCES.items():
        torch.testing.assert_close(recurrence(inputs, W, U, b), last[0], msg=backend)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("input_size,hidden_size,length", [(3, 4, 1), (8, 5, 9), (32, 32, 20)])
def test_gradients_equal_the_loop_backend_in_float64(backend: str, input_size: int, hidden_size: int,
                                                     length: int) -> None:
    """Loss and every parameter's gradient agree to float64 rounding (sum-reduced cross-entropy, as E1)."""
    loop, other = twin_models(input_size, hidden_size, backend)
    digits = torch.randint(0, 10, (16, length), generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 19, (16,), generator=torch.Generator().manual_seed(2))
    losses = {}
    for name, model in (("loop", loop), (backend, other)):
        losses[name] = nn.functional.cross_entropy(model(digits), labels, reduction="sum")
        losses[name].backward()
    torch.testing.assert_close(losses[backend], losses["loop"], rtol=1e-13, atol=0)
    for (name, p_loop), (_, p_other) in zip(loop.named_parameters(), other.named_parameters()):
        torch.testing.assert_close(p_other.grad, p_loop.grad, rtol=1e-12, atol=1e-13, msg=name)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("length", [1, 2, 5])
def test_gradients_match_finite_differences(backend: str, length: int) -> None:
    """Inputs, W, U and b all checked; a length of 1 has no recurrent term (∂L/∂U = 0)."""
    torch.manual_seed(4)
    arguments = tuple(torch.randn(*shape, dtype=torch.float64, requires_grad=True)
                      for shape in ((2, length, 3), (3, 4), (4, 4), (1, 4)))
    assert torch.autograd.gradcheck(RECURRENCES[backend], arguments, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", RECURRENCES)
@pytest.mark.parametrize("length", [1, 2, 5])
def test_token_recurrences_match_finite_differences(backend: str, length: int) -> None:
    """Over tokens the embedding table E is differentiated too; bptt folds it into the input projection."""
    torch.manual_seed(6)
    tokens = torch.randint(0, 4, (3, length))
    arguments = tuple(torch.randn(*shape, dtype=torch.float64, requires_grad=True)
                      for shape in ((4, 3), (3, 5), (5, 5), (1, 5)))
    recurrence = token_recurrence(backend)
    assert torch.autograd.gradcheck(lambda *tensors: recurrence(tokens, *tensors), arguments, eps=1e-6, atol=1e-7)


def test_bptt_skips_the_input_gradient_when_nothing_needs_it() -> None:
    torch.manual_seed(5)
    inputs = torch.randn(2, 4, 3, dtype=torch.float64)
    W, U, b = (torch.randn(*shape, dtype=torch.float64, requires_grad=True) for shape in ((3, 4), (4, 4), (1, 4)))
    RECURRENCES["bptt"](inputs, W, U, b).sum().backward()
    reference = torch.autograd.grad(loop_recurrence(inputs, W, U, b).sum(), (W, U, b))
    for got, expected in zip((W.grad, U.grad, b.grad), reference):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_every_backend_evaluates_without_grad(backend: str) -> None:
    loop, other = twin_models(4, 4, backend, torch.float32)
    digits = torch.randint(0, 10, (5, 9))
    other.eval()
    with torch.no_grad():
        torch.testing.assert_close(other(digits), loop(digits), rtol=1e-5, atol=1e-6)


def test_runs_with_any_backend_record_the_same_norms(write_config, tmp_path: Path) -> None:
    """Whole runs in float64: each backend's metrics.csv equals the loop run's to rounding, and bptt's
    time_grads.csv too (the fused kernel gives none)."""
    tables, through_time = {}, {}
    for backend in RECURRENCES:
        path = write_config(name=backend, model={"backend": backend}, train={"dtype": "float64"},
                            clip={"mode": "norm", "threshold": 0.5}, record={"time_grads": backend != "fused"})
        run_dir = run(load_config(path), tmp_path / backend).run_dir
        tables[backend] = pd.read_csv(run_dir / "metrics.csv")
        if backend != "fused":
            through_time[backend] = pd.read_csv(run_dir / "time_grads.csv")
    for backend in FAST_BACKENDS:
        assert list(tables[backend].columns) == list(tables["loop"].columns)
        pd.testing.assert_frame_equal(tables[backend], tables["loop"], rtol=1e-10, atol=1e-12)
    pd.testing.assert_frame_equal(through_time["bptt"], through_time["loop"], rtol=1e-10, atol=1e-12)


def test_an_unknown_backend_is_a_config_error(write_config) -> None:
    with pytest.raises(ConfigError, match="model.backend: expected one of 'bptt', 'loop', 'fused', got 'cudnn'"):
        load_config(write_config(model={"backend": "cudnn"}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.filterwarnings("error::UserWarning")  # cuDNN's warning about unpacked weights is ours to keep quiet
@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_every_backend_on_cuda_matches_cpu(backend: str) -> None:
    loop, other = twin_models(8, 16, backend)
    digits = torch.randint(0, 10, (32, 9))
    labels = torch.randint(0, 19, (32,))
    on_gpu = other.to("cuda")
    nn.functional.cross_entropy(on_gpu(digits.cuda()), labels.cuda(), reduction="sum").backward()
    nn.functional.cross_entropy(loop(digits), labels, reduction="sum").backward()
    for (name, p_loop), (_, p_gpu) in zip(loop.named_parameters(), on_gpu.named_parameters()):
        torch.testing.assert_close(p_gpu.grad.cpu(), p_loop.grad, rtol=1e-9, atol=1e-11, msg=name)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
def test_every_backend_runs_under_vmap_with_the_loops_gradients(backend: str) -> None:
    """Vectorized sweeps vmap the model over stacked parameters: values and per-point gradients must hold.

    (torch's RNN kernel has no batching rule, so `fused` falls back to the loop there; `bptt` is batched.)
    """
    loop, other = twin_models(4, 5, backend)
    stacked = {name: torch.stack([p.detach(), 2 * p.detach()]) for name, p in other.named_parameters()}
    digits = torch.randint(0, 10, (2, 3, 9))

    def point_loss(model: nn.Module):
        return lambda params, x: torch.func.functional_call(model, params, (x,)).pow(2).sum()

    values = torch.func.vmap(point_loss(other))(stacked, digits)
    grads = torch.func.vmap(torch.func.grad(point_loss(other)))(stacked, digits)
    for index in range(2):
        params = {name: value[index] for name, value in stacked.items()}
        torch.testing.assert_close(values[index], point_loss(loop)(params, digits[index]))
        expected = torch.func.grad(point_loss(loop))(params, digits[index])
        for name in params:
            torch.testing.assert_close(grads[name][index], expected[name], rtol=1e-12, atol=1e-12, msg=name)


def test_bptt_batching_rule_runs_all_points_as_one_recurrence() -> None:
    """Under vmap, bptt runs one batched recurrence (points on a leading axis); each point's values and
    gradients equal the loop's for that point alone, also for an argument all points share (U here)."""
    torch.manual_seed(7)
    options = {"dtype": torch.float64, "requires_grad": True}
    inputs = torch.randn(3, 2, 5, 4, dtype=torch.float64)  # (points, batch, time, input)
    W, U, b = torch.randn(3, 4, 6, **options), torch.randn(6, 6, **options), torch.randn(3, 1, 6, **options)
    last = torch.func.vmap(RECURRENCES["bptt"], in_dims=(0, 0, None, 0))(inputs, W, U, b)
    grads = torch.autograd.grad(last.pow(2).sum(), (W, U, b))
    expected_U = torch.zeros_like(U)
    for point in range(3):
        alone = loop_recurrence(inputs[point], W[point], U, b[point])
        torch.testing.assert_close(last[point], alone)
        grad_W, grad_U, grad_b = torch.autograd.grad(alone.pow(2).sum(), (W, U, b))
        torch.testing.assert_close(grads[0][point], grad_W[point])
        torch.testing.assert_close(grads[2][point], grad_b[point])
        expected_U += grad_U
    torch.testing.assert_close(grads[1], expected_U)
