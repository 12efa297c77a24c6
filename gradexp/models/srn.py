"""The simple recurrent network of E1 (NNDL practice book 6.1, seed 002).

Embedding(10 digits -> input_size) -> SRN -> Linear(hidden_size -> classes) on the last hidden
state. The SRN has exactly three parameters, named as in the book so the metric columns read
`rnn_model.W`, `rnn_model.U`, `rnn_model.b`:

    h_0 = 0,    h_t = tanh(x_t W + h_{t-1} U + b)

with W (input_size x hidden_size), U (hidden_size x hidden_size), b (1 x hidden_size).
W, U and b start Xavier-uniform, as Paddle's `create_parameter` does by default (the book's framework). With
`init: book` (the default) the embedding table and the classifier's weight start Xavier-uniform too and its
bias at zero, as the book's `Embedding` layer and Paddle's `nn.Linear` start them; `init: torch` leaves
torch's defaults (the embedding N(0, 1), about 4.5 times the book's scale; the classifier Kaiming-uniform).

Three backends compute the same recurrence from the same three parameters: `loop` writes it out
step by step in Python, as the book does, and autograd records every step; `fused` hands it to
torch's RNN kernel (the one behind `nn.RNN(nonlinearity="tanh")`, cuDNN on a GPU), which runs the
time loop in C++; `bptt` runs the same loop with backpropagation through time written out by hand,
so autograd sees the whole recurrence as one node (gradexp.models.srn_bptt; the fastest on a CPU at
E1's sizes: see benchmarks/README.md).
"""

from __future__ import annotations

from typing import Callable, Literal, Optional

import torch
from torch import nn

from gradexp.data.base import DataSpec
from gradexp.errors import ConfigError
from gradexp.models import MODELS
from gradexp.models.base import StateHooks, TimeGradients, through_rnn_kernel
from gradexp.models.srn_bptt import bptt_recurrence, bptt_token_recurrence
from gradexp.value_types import PositiveInt


Backend = Literal["bptt", "loop", "fused"]
Init = Literal["book", "torch"]


def loop_recurrence(inputs: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                    time_gradients: Optional[TimeGradients] = None) -> torch.Tensor:
    """h_t = tanh(x_t W + h_{t-1} U + b) one step at a time; inputs (batch, time, input) -> h_T (batch, hidden).

    With `time_gradients` enabled, a hook on each h_t catches ∂L/∂h_t as autograd passes it back, and the
    last one to come (h_1's) leaves their norms there.
    """
    hidden = inputs.new_zeros(inputs.shape[0], W.shape[1])
    watch = time_gradients is not None and time_gradients.enabled and torch.is_grad_enabled()
    if watch:
        hooks = StateHooks(inputs.shape[1], lambda norms: setattr(time_gradients, "norms", norms))
    # unbind, not inputs[:, t]: the backward of T slices would add T zero-padded copies of the whole input.
    for t, x_t in enumerate(inputs.unbind(1)):
        hidden = torch.tanh(x_t @ W + hidden @ U + b)
        if watch:
            hooks.watch(t, hidden)
    return hidden


def fused_recurrence(inputs: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                     time_gradients: None = None) -> torch.Tensor:
    """The same recurrence through torch's RNN kernel (which keeps ∂L/∂h_t inside: `time_gradients` is always
    None, SequenceClassifier.record_time_gradients refuses this backend): h_t = tanh(x_t W + h_{t-1} U + b).

    The kernel has no vmap batching rule, so under torch.func.vmap (vectorized sweeps train many
    SRNs as one) the same recurrence is written out step by step instead.
    """
    if any(torch._C._functorch.is_batchedtensor(tensor) for tensor in (inputs, W, U, b)):
        return loop_recurrence(inputs, W, U, b)
    initial = inputs.new_zeros(1, inputs.shape[0], W.shape[1])
    _, last = through_rnn_kernel(torch._VF.rnn_tanh, inputs, initial, W, U, b)
    return last[0]


RECURRENCES: dict[str, Callable[..., torch.Tensor]] = {
    "bptt": bptt_recurrence, "loop": loop_recurrence, "fused": fused_recurrence}
# The backends that give ∂L/∂h_t (record.time_grads), and whether also under vmap (a vectorized batch): torch's
# RNN kernel keeps them inside.
TIME_GRADIENT_BACKENDS: dict[str, bool] = {"bptt": True, "loop": False}


def embed(tokens: torch.Tensor, E: torch.Tensor) -> torch.Tensor:
    """The rows of E for the tokens (batch, time) -> (batch, time, input), as nn.Embedding looks them up."""
    # index_select, not nn.functional.embedding: the same rows, but its backward (an index_add) takes half the
    # time on a CPU at E1's sizes.
    return E.index_select(0, tokens.reshape(-1)).view(*tokens.shape, -1)


def token_recurrence(backend: str) -> Callable[..., torch.Tensor]:
    """(tokens, E, W, U, b, time_gradients) -> h_T: the recurrence over the embedded tokens, as `backend` computes
    it."""
    if backend == "bptt":
        return bptt_token_recurrence
    recurrence = RECURRENCES[backend]
    return lambda tokens, E, W, U, b, time_gradients=None: recurrence(embed(tokens, E), W, U, b, time_gradients)


class SRN(nn.Module):
    # W and U are (in x hidden): one hidden unit's weights are a column (AGC's unit-wise norm needs this).
    output_axes = {"W": 1, "U": 1}
    # What SequenceClassifier declares for it: the plotted parameters, the recurrent matrix, the backends
    # that give ∂L/∂h_t, and no cell state.
    plot_names = ("W", "U", "b")
    recurrent_names = ("U",)
    time_gradient_backends = TIME_GRADIENT_BACKENDS
    has_cells = False

    def __init__(self, input_size: int, hidden_size: int, backend: Backend = "bptt") -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.backend = backend
        # Set by record_time_gradients: where the backward leaves ‖∂L/∂h_t‖.
        self.time_gradients: Optional[TimeGradients] = None
        self.recurrence = RECURRENCES[backend]
        self.token_recurrence = token_recurrence(backend)
        self.W = nn.Parameter(torch.empty(input_size, hidden_size))
        self.U = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b = nn.Parameter(torch.empty(1, hidden_size))
        for parameter in (self.W, self.U, self.b):
            nn.init.xavier_uniform_(parameter)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs: (batch, time, input_size) -> last hidden state (batch, hidden_size)."""
        return self.recurrence(inputs, self.W, self.U, self.b, self.time_gradients)

    def over_tokens(self, tokens: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The same for inputs that are rows of `embedding` (vocabulary x input_size): tokens (batch, time)."""
        return self.token_recurrence(tokens, embedding, self.W, self.U, self.b, self.time_gradients)


class SequenceClassifier(nn.Module):
    """The book's Model_RNN4SeqClass: embed the digits, run a recurrent layer (the SRN, or a gated one of
    gradexp.models.gated), classify its last state.

    gradexp.models.base.Model's declarations come from the recurrent layer (its plotted parameters, recurrent
    matrices and column units; the embedding and the classifier are torch's own layers, whose units agc
    knows). `recurrence(input_size)` makes the layer: after the embedding, before the classifier, the order in
    which the three draw their initial values.
    """

    layer_parameters = ()

    def __init__(self, vocab_size: int, input_size: int, num_classes: int,
                 recurrence: Callable[[int], nn.Module], init: Init = "book") -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, input_size)
        self.rnn_model = recurrence(input_size)
        self.classifier = nn.Linear(self.rnn_model.hidden_size, num_classes)
        self.default_plot_parameters = tuple(f"rnn_model.{name}" for name in self.rnn_model.plot_names)
        self.recurrent_parameters = tuple(f"rnn_model.{name}" for name in self.rnn_model.recurrent_names)
        self.output_axes = {f"rnn_model.{name}": axis for name, axis in self.rnn_model.output_axes.items()}
        if init == "book":
            # Paddle's XavierUniform: U(±sqrt(6 / (fan_in + fan_out))), the same bound whichever way a
            # matrix is laid out, so torch's xavier_uniform_ draws from the book's distribution.
            nn.init.xavier_uniform_(self.embedding.weight)
            nn.init.xavier_uniform_(self.classifier.weight)
            nn.init.zeros_(self.classifier.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.rnn_model.over_tokens(inputs, self.embedding.weight))

    def record_time_gradients(self) -> TimeGradients:
        """Have the backward leave ‖∂L/∂h_t‖ for every position t (when enabled), and an LSTM's ‖∂L/∂c_t‖; a
        ConfigError for a fused backend, whose kernel keeps them inside."""
        backend = self.rnn_model.backend
        backends = self.rnn_model.time_gradient_backends
        if backend not in backends:
            raise ConfigError("", "record.time_grads", f"model.backend {backend} (torch's kernel) cannot give "
                                                       f"the gradient at each time step; use model.backend "
                                                       f"{' or '.join(backends)}, or set record.time_grads: false")
        self.rnn_model.time_gradients = TimeGradients(batched=backends[backend], cells=self.rnn_model.has_cells)
        return self.rnn_model.time_gradients


def check_token_classification(spec: DataSpec, model: str) -> None:
    """A ConfigError unless the data are token sequences with class labels, as a sequence classifier needs."""
    if spec.vocab_size is None or spec.task != "classification":
        raise ConfigError("", "model.name", f"model {model!r} needs token sequences with class labels (dataset "
                                            f"digit_sum)")


@MODELS.register("srn")
def srn(spec: DataSpec, *, input_size: PositiveInt = 32, hidden_size: PositiveInt = 32,
        backend: Backend = "bptt", init: Init = "book") -> nn.Module:
    """`backend` picks how the recurrence is computed and differentiated: same parameters, same gradients.

    bptt (default): the hand-written backpropagation through time, fastest on a CPU; loop: the book's
    step-by-step loop, differentiated by autograd; fused: torch's RNN kernel (cuDNN on a GPU). `init`:
    book (every parameter as the book's Paddle model starts it) or torch (torch's layer defaults for the
    embedding and the classifier).
    """
    check_token_classification(spec, "srn")
    return SequenceClassifier(spec.vocab_size, input_size, spec.output_dim,
                              lambda inputs: SRN(inputs, hidden_size, backend), init)
