"""The simple recurrent network of E1 (NNDL practice book 6.1, seed 002).

Embedding(10 digits -> input_size) -> SRN -> Linear(hidden_size -> classes) on the last hidden
state. The SRN has exactly three parameters, named as in the book so the metric columns read
`rnn_model.W`, `rnn_model.U`, `rnn_model.b`:

    h_0 = 0,    h_t = tanh(x_t W + h_{t-1} U + b)

with W (input_size x hidden_size), U (hidden_size x hidden_size), b (1 x hidden_size).
W, U and b start Xavier-uniform, as Paddle's `create_parameter` does by default (the book's framework).

Two backends compute the same recurrence from the same three parameters: `loop` writes it out
step by step in Python, as the book does; `fused` hands it to torch's RNN kernel (the one behind
`nn.RNN(nonlinearity="tanh")`, cuDNN on a GPU), which runs the time loop in C++.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import nn

from gradexp.config.types import PositiveInt
from gradexp.data.base import DataSpec
from gradexp.errors import ConfigError
from gradexp.models import MODELS


Backend = Literal["loop", "fused"]


def loop_recurrence(inputs: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """h_t = tanh(x_t W + h_{t-1} U + b) one step at a time; inputs (batch, time, input) -> h_T (batch, hidden)."""
    hidden = inputs.new_zeros(inputs.shape[0], W.shape[1])
    # unbind, not inputs[:, t]: the backward of T slices would add T zero-padded copies of the whole input.
    for x_t in inputs.unbind(1):
        hidden = torch.tanh(x_t @ W + hidden @ U + b)
    return hidden


def fused_recurrence(inputs: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The same recurrence through torch's RNN kernel.

    nn.RNN computes h_t = tanh(x_t A^T + a + h_{t-1} B^T + c); with A = W^T, B = U^T, a = b and
    c = 0 (a constant, not a parameter) that is exactly the book's rule, and autograd carries the
    gradients back to W, U and b through the transposes.

    The kernel has no vmap batching rule, so under torch.func.vmap (vectorized sweeps train many
    SRNs as one) the same recurrence is written out step by step instead.
    """
    if any(torch._C._functorch.is_batchedtensor(tensor) for tensor in (inputs, W, U, b)):
        return loop_recurrence(inputs, W, U, b)
    bias = b.reshape(-1)
    initial = inputs.new_zeros(1, inputs.shape[0], W.shape[1])
    weights = [W.t(), U.t(), bias, torch.zeros_like(bias)]
    # Arguments after the weights: has_biases, num_layers, dropout, train, bidirectional, batch_first.
    # `train` only tells cuDNN to keep what its backward needs, so it follows grad mode.
    _, last = torch._VF.rnn_tanh(inputs, initial, weights, True, 1, 0.0, torch.is_grad_enabled(), False, True)
    return last[0]


RECURRENCES: dict[str, Callable[..., torch.Tensor]] = {"loop": loop_recurrence, "fused": fused_recurrence}


class SRN(nn.Module):
    # W and U are (in x hidden): one hidden unit's weights are a column (AGC's unit-wise norm needs this).
    output_axes = {"W": 1, "U": 1}

    def __init__(self, input_size: int, hidden_size: int, backend: Backend = "loop") -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.recurrence = RECURRENCES[backend]
        self.W = nn.Parameter(torch.empty(input_size, hidden_size))
        self.U = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b = nn.Parameter(torch.empty(1, hidden_size))
        for parameter in (self.W, self.U, self.b):
            nn.init.xavier_uniform_(parameter)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs: (batch, time, input_size) -> last hidden state (batch, hidden_size)."""
        return self.recurrence(inputs, self.W, self.U, self.b)


class SequenceClassifier(nn.Module):
    """The book's Model_RNN4SeqClass: embed the digits, run the SRN, classify its last state."""

    default_plot_parameters = ("rnn_model.W", "rnn_model.U", "rnn_model.b")

    def __init__(self, vocab_size: int, input_size: int, hidden_size: int, num_classes: int,
                 backend: Backend = "loop") -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, input_size)
        self.rnn_model = SRN(input_size, hidden_size, backend)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.rnn_model(self.embedding(inputs)))


@MODELS.register("srn")
def srn(spec: DataSpec, *, input_size: PositiveInt = 32, hidden_size: PositiveInt = 32,
        backend: Backend = "loop") -> nn.Module:
    """`backend: fused` runs the recurrence in torch's RNN kernel: same parameters, same gradients, faster."""
    if spec.vocab_size is None or spec.task != "classification":
        raise ConfigError("", "model.name", "model 'srn' needs token sequences with class labels (dataset digit_sum)")
    return SequenceClassifier(spec.vocab_size, input_size, hidden_size, spec.output_dim, backend)
