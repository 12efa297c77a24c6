"""The fused SRN backend: torch's RNN kernel computing the book's recurrence from the same W, U and b."""

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
from gradexp.models.srn import fused_recurrence, loop_recurrence
from gradexp.runner import run

SPEC = DataSpec(task="classification", input_shape=(9,), output_dim=19, vocab_size=10)


def twin_models(input_size: int, hidden_size: int, dtype: torch.dtype = torch.float64) -> tuple[nn.Module, nn.Module]:
    """A loop-backend model and a fused one holding the very same parameter values."""
    torch.manual_seed(3)
    loop = MODELS.get("srn")(SPEC, input_size=input_size, hidden_size=hidden_size).to(dtype)
    fused = MODELS.get("srn")(SPEC, input_size=input_size, hidden_size=hidden_size, backend="fused").to(dtype)
    fused.load_state_dict(loop.state_dict())
    return loop, fused


def test_fused_backend_has_the_same_parameters_under_the_same_names() -> None:
    loop, fused = twin_models(6, 5)
    assert [(n, p.shape) for n, p in loop.named_parameters()] == [(n, p.shape) for n, p in fused.named_parameters()]
    assert set(loop.state_dict()) == set(fused.state_dict())


def test_fused_recurrence_is_torch_rnn_with_w_u_b_mapped() -> None:
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
    torch.testing.assert_close(fused_recurrence(inputs, W, U, b), last[0])
    torch.testing.assert_close(loop_recurrence(inputs, W, U, b), last[0])


@pytest.mark.parametrize("input_size,hidden_size,length", [(3, 4, 1), (8, 5, 9), (32, 32, 20)])
def test_gradients_equal_the_loop_backend_in_float64(input_size: int, hidden_size: int, length: int) -> None:
    """Loss and every parameter's gradient agree to float64 rounding (sum-reduced cross-entropy, as E1)."""
    loop, fused = twin_models(input_size, hidden_size)
    digits = torch.randint(0, 10, (16, length), generator=torch.Generator().manual_seed(1))
    labels = torch.randint(0, 19, (16,), generator=torch.Generator().manual_seed(2))
    losses = {}
    for name, model in (("loop", loop), ("fused", fused)):
        losses[name] = nn.functional.cross_entropy(model(digits), labels, reduction="sum")
        losses[name].backward()
    torch.testing.assert_close(losses["fused"], losses["loop"], rtol=1e-13, atol=0)
    for (name, p_loop), (_, p_fused) in zip(loop.named_parameters(), fused.named_parameters()):
        torch.testing.assert_close(p_fused.grad, p_loop.grad, rtol=1e-12, atol=1e-13, msg=name)


def test_fused_gradients_match_finite_differences() -> None:
    torch.manual_seed(4)
    arguments = tuple(torch.randn(*shape, dtype=torch.float64, requires_grad=True)
                      for shape in ((2, 5, 3), (3, 4), (4, 4), (1, 4)))
    assert torch.autograd.gradcheck(fused_recurrence, arguments, eps=1e-6, atol=1e-7)


def test_fused_model_evaluates_without_grad() -> None:
    loop, fused = twin_models(4, 4, torch.float32)
    digits = torch.randint(0, 10, (5, 9))
    fused.eval()
    with torch.no_grad():
        torch.testing.assert_close(fused(digits), loop(digits), rtol=1e-5, atol=1e-6)


def test_runs_with_either_backend_record_the_same_norms(write_config, tmp_path: Path) -> None:
    """Whole runs in float64: the fused run's metrics.csv equals the loop run's to rounding."""
    tables = {}
    for backend in ("loop", "fused"):
        path = write_config(name=backend, model={"backend": backend}, train={"dtype": "float64"},
                            clip={"mode": "norm", "threshold": 0.5})
        tables[backend] = pd.read_csv(run(load_config(path), tmp_path / backend).run_dir / "metrics.csv")
    assert list(tables["loop"].columns) == list(tables["fused"].columns)
    pd.testing.assert_frame_equal(tables["fused"], tables["loop"], rtol=1e-10, atol=1e-12)


def test_an_unknown_backend_is_a_config_error(write_config) -> None:
    with pytest.raises(ConfigError, match="model.backend: expected one of 'loop', 'fused', got 'cudnn'"):
        load_config(write_config(model={"backend": "cudnn"}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fused_backend_on_cuda_matches_cpu() -> None:
    loop, fused = twin_models(8, 16)
    digits = torch.randint(0, 10, (32, 9))
    labels = torch.randint(0, 19, (32,))
    on_gpu = fused.to("cuda")
    nn.functional.cross_entropy(on_gpu(digits.cuda()), labels.cuda(), reduction="sum").backward()
    nn.functional.cross_entropy(loop(digits), labels, reduction="sum").backward()
    for (name, p_loop), (_, p_gpu) in zip(loop.named_parameters(), on_gpu.named_parameters()):
        torch.testing.assert_close(p_gpu.grad.cpu(), p_loop.grad, rtol=1e-9, atol=1e-11, msg=name)


def test_fused_backend_runs_under_vmap_as_the_loop() -> None:
    """Vectorized sweeps vmap the model over stacked parameters; torch's RNN kernel has no batching rule."""
    loop, fused = twin_models(4, 5)
    stacked = {name: torch.stack([p.detach(), 2 * p.detach()]) for name, p in fused.named_parameters()}
    digits = torch.randint(0, 10, (2, 3, 9))
    batched = torch.func.vmap(lambda params, x: torch.func.functional_call(fused, params, (x,)))(stacked, digits)
    for index in range(2):
        params = {name: value[index] for name, value in stacked.items()}
        torch.testing.assert_close(batched[index], torch.func.functional_call(loop, params, (digits[index],)))
