"""What gradexp reads from a model beyond nn.Module's own API, declared here rather than asked for by name.

Every registered builder returns an `nn.Module` that is also a `Model`: it states every attribute, even
when there is nothing to say (an empty `output_axes`), so no caller needs hasattr or getattr to find them.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Protocol, Sequence, runtime_checkable

import torch


@runtime_checkable
class Model(Protocol):
    """The declarations of a registered model (an nn.Module), read by the runner and by unit-wise clip rules.

    default_plot_parameters: the parameters (names as `named_parameters()` gives them) whose gradient norms
        the run's plot shows when `plot.params` does not choose them.
    recurrent_parameters: the recurrent matrices (h_t = f(... + h_{t-1} U)), whose largest singular value
        says whether gradients through time can explode or must vanish (record.sigma_max); none for a
        feed-forward model. A model that has some also has `record_time_gradients()`, which returns the
        TimeGradients its backward fills (or raises ConfigError when its backend cannot).
    layer_parameters: for a feed-forward stack, each layer's weight from the input to the output, whose
        gradient norms show a gradient vanishing through depth (metrics.csv's depth_ratio, grad_flow.pdf);
        none for a recurrent model.
    output_axes: for each parameter (dotted name) of two or more dimensions that is not the weight of one of
        torch's own layers (nn.Linear, nn.Conv*, nn.Embedding: see gradexp.clipping.agc), the axis that
        indexes its output units; agc normalises each unit over the other axes. E.g. the SRN stores W as
        (in x hidden), so `{"rnn_model.W": 1}`.
    """

    default_plot_parameters: Sequence[str]
    recurrent_parameters: Sequence[str]
    layer_parameters: Sequence[str]
    output_axes: Mapping[str, int]


@dataclass
class TimeGradients:
    """Where a recurrent model's backward leaves ‖∂L/∂h_t‖ for t = 1..T: the total derivative of the loss with
    respect to each hidden state, L2 over the batch and the units, when `enabled` (the runner turns it on for
    the steps it records). A device tensor (T,), or (T, points) for a vectorized sweep's batch.

    `batched`: whether the model also fills it under torch.func.vmap (a vectorized batch). `cells`: whether it
    also leaves ‖∂L/∂c_t‖ of a cell state (an LSTM's) in `cell_norms`, shaped as `norms`.
    """

    batched: bool
    cells: bool = False
    enabled: bool = False
    norms: Optional[torch.Tensor] = None
    cell_norms: Optional[torch.Tensor] = None


class StateHooks:
    """Catches ∂L/∂s_t for every position of a state as autograd passes it back; once every position's has come,
    their norms (L2 over the batch and the units) go to `deliver`."""

    def __init__(self, length: int, deliver: Callable[[torch.Tensor], None]) -> None:
        self.length = length
        self.deliver = deliver
        self.caught: dict[int, torch.Tensor] = {}

    def watch(self, t: int, state: torch.Tensor) -> None:
        state.register_hook(functools.partial(self._catch, t))

    def _catch(self, t: int, gradient: torch.Tensor) -> None:
        self.caught[t] = gradient
        if len(self.caught) == self.length:
            self.deliver(torch.linalg.vector_norm(torch.stack([self.caught[s] for s in range(self.length)]),
                                                 dim=(-2, -1)))


def through_rnn_kernel(kernel: Callable[..., tuple], inputs: torch.Tensor, initial: object, W: torch.Tensor,
                       U: torch.Tensor, b: torch.Tensor) -> tuple:
    """torch's one-layer RNN kernel `kernel` (torch._VF.rnn_tanh, lstm or gru) over `inputs` (batch, time, in) from
    the state `initial`, with the book's weights: W (in x gates*hidden) on the input, U (hidden x gates*hidden) on
    the state, b on the input side and none on the state side. Returns the kernel's outputs.

    The kernel computes x A^T + a + h B^T + c, so A = W^T, B = U^T, a = b and c = 0 (a constant, not a parameter);
    autograd carries the gradients back to W, U and b through the transposes.
    """
    bias = b.reshape(-1)
    weights = [W.t(), U.t(), bias, torch.zeros_like(bias)]
    # After the weights: has_biases, num_layers, dropout, train, bidirectional, batch_first. `train` only tells
    # cuDNN to keep what its backward needs, so it follows grad mode.
    options = (True, 1, 0.0, torch.is_grad_enabled(), False, True)
    if not inputs.is_cuda:
        return kernel(inputs, initial, weights, *options)
    # cuDNN views each weight as one flat block, which a transpose's strides are not.
    weights = [weight.contiguous() for weight in weights]
    with warnings.catch_warnings():
        # cuDNN warns at the first call that the weights are not one packed buffer, so it packs them at every
        # call: they are made from W, U and b anew each step, and there is no packed buffer to keep.
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk")
        return kernel(inputs, initial, weights, *options)
