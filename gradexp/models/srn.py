"""The simple recurrent network of E1 (NNDL practice book 6.1, seed 002).

Embedding(10 digits -> input_size) -> SRN -> Linear(hidden_size -> classes) on the last hidden
state. The SRN has exactly three parameters, named as in the book so the metric columns read
`rnn_model.W`, `rnn_model.U`, `rnn_model.b`:

    h_0 = 0,    h_t = tanh(x_t W + h_{t-1} U + b)

with W (input_size x hidden_size), U (hidden_size x hidden_size), b (1 x hidden_size).
W, U and b start Xavier-uniform, as Paddle's `create_parameter` does by default (the book's framework).

Three backends compute the same recurrence from the same three parameters: `loop` writes it out
step by step in Python, as the book does, and autograd records every step; `fused` hands it to
torch's RNN kernel (the one behind `nn.RNN(nonlinearity="tanh")`, cuDNN on a GPU), which runs the
time loop in C++; `bptt` runs the same loop with backpropagation through time written out by hand,
so autograd sees the whole recurrence as one node (the fastest on a CPU at E1's sizes: see
benchmarks/README.md).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Optional

import torch
from torch import nn

from gradexp.config.types import PositiveInt
from gradexp.data.base import DataSpec
from gradexp.errors import ConfigError
from gradexp.models import MODELS


Backend = Literal["bptt", "loop", "fused"]


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


class BackpropagationThroughTime(torch.autograd.Function):
    """h_t = tanh(x_t W + h_{t-1} U + b) with its backward written out (BPTT, NNDL section 6.2.1).

    Forward keeps every state h_1..h_T. With δ_t = ∂L/∂(x_t W + h_{t-1} U + b) and ∂L/∂h_T given:

        δ_T = ∂L/∂h_T ⊙ (1 − h_T²),    δ_{t−1} = (δ_t Uᵀ) ⊙ (1 − h_{t−1}²)
        ∂L/∂W = Σ_t x_tᵀ δ_t,    ∂L/∂U = Σ_{t≥2} h_{t−1}ᵀ δ_t,    ∂L/∂b = Σ_t 1ᵀ δ_t,    ∂L/∂x_t = δ_t Wᵀ

    Only the δ recursion runs step by step; the sums are three matrix products over all steps at
    once. Autograd records one node for the whole sequence instead of a handful per step, which is
    most of the loop backend's cost at E1's sizes. Written in plain tensor ops without `out=` or
    in-place writes, so torch.func.vmap batches it (generate_vmap_rule) for vectorized sweeps.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(inputs: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length, _ = inputs.shape
        # x_t W + b for every step in one product: (batch, time, hidden)
        projected = torch.addmm(b, inputs.reshape(batch * length, -1), W).view(batch, length, -1)
        hidden = projected.new_zeros(batch, W.shape[1])
        states = []
        for t in range(length):
            hidden = torch.tanh(torch.addmm(projected[:, t], hidden, U))
            states.append(hidden)
        return hidden, torch.stack(states, 1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
        sequence, W, U, _ = inputs
        _, states = output
        # The states are kept for the backward, not offered as a result to differentiate.
        ctx.mark_non_differentiable(states)
        ctx.save_for_backward(sequence, W, U, states)

    @staticmethod
    def backward(ctx: Any, grad_last: torch.Tensor, _: Optional[torch.Tensor]) -> tuple[Optional[torch.Tensor], ...]:
        sequence, W, U, states = ctx.saved_tensors
        batch, length, hidden_size = states.shape
        slopes = 1 - states * states  # tanh' at every step
        U_transposed = U.t()
        deltas = []
        delta_into_state = grad_last
        for t in range(length - 1, -1, -1):
            delta = delta_into_state * slopes[:, t]
            deltas.append(delta)
            if t:
                delta_into_state = torch.mm(delta, U_transposed)
        delta = torch.stack(deltas[::-1], 1)  # (batch, time, hidden), as the states
        flat_delta = delta.reshape(batch * length, hidden_size)
        grad_W = torch.mm(sequence.reshape(batch * length, -1).t(), flat_delta)
        # h_0 = 0 adds nothing to ∂L/∂U
        grad_U = torch.mm(states[:, :-1].reshape(-1, hidden_size).t(), delta[:, 1:].reshape(-1, hidden_size))
        grad_b = flat_delta.sum(0, keepdim=True)
        grad_inputs = torch.mm(flat_delta, W.t()).view(sequence.shape) if ctx.needs_input_grad[0] else None
        return grad_inputs, grad_W, grad_U, grad_b


def bptt_recurrence(inputs: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The same recurrence, differentiated by BackpropagationThroughTime; inputs (batch, time, input) -> h_T."""
    last, _ = BackpropagationThroughTime.apply(inputs, W, U, b)
    return last


RECURRENCES: dict[str, Callable[..., torch.Tensor]] = {
    "bptt": bptt_recurrence, "loop": loop_recurrence, "fused": fused_recurrence}


class SRN(nn.Module):
    # W and U are (in x hidden): one hidden unit's weights are a column (AGC's unit-wise norm needs this).
    output_axes = {"W": 1, "U": 1}

    def __init__(self, input_size: int, hidden_size: int, backend: Backend = "bptt") -> None:
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
                 backend: Backend = "bptt") -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, input_size)
        self.rnn_model = SRN(input_size, hidden_size, backend)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # The embedding lookup as index_select: the same rows, but its backward (an index_add) takes half the
        # time of nn.Embedding's on a CPU at E1's sizes, a few percent of a whole step.
        embedded = self.embedding.weight.index_select(0, inputs.reshape(-1)).view(*inputs.shape, -1)
        return self.classifier(self.rnn_model(embedded))


@MODELS.register("srn")
def srn(spec: DataSpec, *, input_size: PositiveInt = 32, hidden_size: PositiveInt = 32,
        backend: Backend = "bptt") -> nn.Module:
    """`backend` picks how the recurrence is computed and differentiated: same parameters, same gradients.

    bptt (default): the hand-written backpropagation through time, fastest on a CPU; loop: the book's
    step-by-step loop, differentiated by autograd; fused: torch's RNN kernel (cuDNN on a GPU).
    """
    if spec.vocab_size is None or spec.task != "classification":
        raise ConfigError("", "model.name", "model 'srn' needs token sequences with class labels (dataset digit_sum)")
    return SequenceClassifier(spec.vocab_size, input_size, hidden_size, spec.output_dim, backend)
