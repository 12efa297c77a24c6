"""The gated recurrent networks of the book's chapter 6.3: an LSTM and a GRU in place of E1's SRN.

Seed 002 names the LSTM as the more effective remedy for vanishing gradients. Both take the SRN's place in the
book's Model_RNN4SeqClass (gradexp.models.srn.SequenceClassifier: the same embedding and classifier), and keep
every gate's parameters as tensors of their own, as the book writes them, so metrics.csv shows each gate's
gradient norm. With x_t the embedded digit and σ the logistic function:

LSTM (book 6.3): input, forget and output gates and the candidate,

    i_t = σ(x_t W_i + h_{t-1} U_i + b_i)     f_t = σ(x_t W_f + h_{t-1} U_f + b_f)
    o_t = σ(x_t W_o + h_{t-1} U_o + b_o)     c̃_t = tanh(x_t W_c + h_{t-1} U_c + b_c)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ c̃_t          h_t = o_t ⊙ tanh(c_t)                      h_0 = c_0 = 0

GRU (Paddle's nn.GRU, as torch's and cuDNN's: the reset gate scales h_{t-1} U_h, not h_{t-1}): update and
reset gates and the candidate,

    z_t = σ(x_t W_z + h_{t-1} U_z + b_z)     r_t = σ(x_t W_r + h_{t-1} U_r + b_r)
    h̃_t = tanh(x_t W_h + b_h + r_t ⊙ (h_{t-1} U_h))
    h_t = z_t ⊙ h_{t-1} + (1 − z_t) ⊙ h̃_t                                               h_0 = 0

W are (input x hidden), U (hidden x hidden), b (1 x hidden), all Xavier-uniform like the SRN's. Backends:
`loop` writes the recurrence out step by step (one product for every gate's input part over the whole
sequence, one for the hidden part each step) and autograd differentiates it; `fused` hands it to torch's
LSTM/GRU kernel (cuDNN on a GPU) with the gates' tensors joined in the kernel's layout, and falls back to the
loop under vmap (vectorized sweeps), where the kernel has no batching rule. Only `loop` gives the gradients
through time: ‖∂L/∂h_t‖ for both, and ‖∂L/∂c_t‖ of the LSTM's cell state.
"""

from __future__ import annotations

from typing import Callable, Literal, Optional

import torch
from torch import nn

from gradexp.data.base import DataSpec
from gradexp.models import MODELS
from gradexp.models.base import StateHooks, TimeGradients, through_rnn_kernel
from gradexp.models.srn import Init, SequenceClassifier, check_token_classification, embed
from gradexp.value_types import PositiveInt

GatedBackend = Literal["loop", "fused"]
# The backends that give ∂L/∂h_t (record.time_grads), and whether also under vmap: the loop's hooks are not.
GATED_TIME_GRADIENT_BACKENDS: dict[str, bool] = {"loop": False}


class GatedRecurrence(nn.Module):
    """A gated recurrent layer with one (W, U, b) triple per gate, named W_<gate>, U_<gate>, b_<gate>."""

    # Subclasses name their gates and define loop(projected, U, watch) and fused(inputs).
    gates: tuple[str, ...] = ()
    time_gradient_backends = GATED_TIME_GRADIENT_BACKENDS
    # Whether the backward also leaves ‖∂L/∂c_t‖ of a cell state (TimeGradients.cell_norms).
    has_cells = False

    def __init__(self, input_size: int, hidden_size: int, backend: GatedBackend = "loop") -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.backend = backend
        # Set by record_time_gradients: where the backward leaves ‖∂L/∂h_t‖ (and the LSTM's ‖∂L/∂c_t‖).
        self.time_gradients: Optional[TimeGradients] = None
        for gate in self.gates:
            self.register_parameter(f"W_{gate}", nn.Parameter(torch.empty(input_size, hidden_size)))
            self.register_parameter(f"U_{gate}", nn.Parameter(torch.empty(hidden_size, hidden_size)))
            self.register_parameter(f"b_{gate}", nn.Parameter(torch.empty(1, hidden_size)))
        for parameter in self.parameters():
            nn.init.xavier_uniform_(parameter)

    @property
    def plot_names(self) -> tuple[str, ...]:
        """The gradient-norm plot's parameters by default: every gate's W and U (the biases are in metrics.csv),
        so the largest of them, often a W, is never left out."""
        return tuple(f"{kind}_{gate}" for kind in "WU" for gate in self.gates)

    @property
    def recurrent_names(self) -> tuple[str, ...]:
        return tuple(f"U_{gate}" for gate in self.gates)

    @property
    def output_axes(self) -> dict[str, int]:
        # W and U are (in x hidden): a hidden unit's weights are a column (AGC's unit-wise norm needs this)
        return {f"{kind}_{gate}": 1 for kind in "WU" for gate in self.gates}

    def joined(self, kind: str, order: Optional[tuple[str, ...]] = None) -> torch.Tensor:
        """Every gate's `kind` tensor side by side, in `order` (default: `gates`): (rows, gates x hidden)."""
        return torch.cat([getattr(self, f"{kind}_{gate}") for gate in order or self.gates], dim=1)

    def through_kernel(self, kernel: Callable[..., tuple], inputs: torch.Tensor, initial: object,
                       order: tuple[str, ...]) -> tuple:
        """torch's kernel over `inputs`, the gates' tensors joined in the kernel's `order`."""
        return through_rnn_kernel(kernel, inputs, initial, *(self.joined(kind, order) for kind in "WUb"))

    def over_tokens(self, tokens: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The last hidden state (batch, hidden) for tokens (batch, time) embedded by `embedding`'s rows."""
        inputs = embed(tokens, embedding)
        batched = any(torch._C._functorch.is_batchedtensor(tensor) for tensor in (inputs, *self.parameters()))
        if self.backend == "fused" and not batched:
            return self.fused(inputs)
        # every gate's input part for the whole sequence at once: (batch, time, gates x hidden)
        projected = inputs @ self.joined("W") + self.joined("b")
        watch = self.time_gradients is not None and self.time_gradients.enabled and torch.is_grad_enabled()
        return self.loop(projected, self.joined("U"), self.time_gradients if watch else None)


class LSTM(GatedRecurrence):
    gates = ("i", "f", "o", "c")
    has_cells = True

    def loop(self, projected: torch.Tensor, U: torch.Tensor, watch: Optional[TimeGradients]) -> torch.Tensor:
        batch, length, _ = projected.shape
        hidden = projected.new_zeros(batch, self.hidden_size)
        cell = projected.new_zeros(batch, self.hidden_size)
        if watch is not None:
            hidden_hooks = StateHooks(length, lambda norms: setattr(watch, "norms", norms))
            cell_hooks = StateHooks(length, lambda norms: setattr(watch, "cell_norms", norms))
        for t, projected_t in enumerate(projected.unbind(1)):
            gates = projected_t + hidden @ U
            input_gate, forget_gate, output_gate = torch.sigmoid(gates[:, :3 * self.hidden_size]).chunk(3, dim=1)
            candidate = torch.tanh(gates[:, 3 * self.hidden_size:])
            cell = forget_gate * cell + input_gate * candidate
            hidden = output_gate * torch.tanh(cell)
            if watch is not None:
                hidden_hooks.watch(t, hidden)
                cell_hooks.watch(t, cell)
        return hidden

    def fused(self, inputs: torch.Tensor) -> torch.Tensor:
        """torch's LSTM kernel: its gates are (i, f, g, o), g the candidate."""
        zeros = inputs.new_zeros(1, inputs.shape[0], self.hidden_size)
        _, last, _ = self.through_kernel(torch._VF.lstm, inputs, (zeros, zeros), ("i", "f", "c", "o"))
        return last[0]


class GRU(GatedRecurrence):
    gates = ("z", "r", "h")

    def loop(self, projected: torch.Tensor, U: torch.Tensor, watch: Optional[TimeGradients]) -> torch.Tensor:
        batch, length, _ = projected.shape
        size = self.hidden_size
        hidden = projected.new_zeros(batch, size)
        if watch is not None:
            hooks = StateHooks(length, lambda norms: setattr(watch, "norms", norms))
        for t, projected_t in enumerate(projected.unbind(1)):
            recurrent = hidden @ U
            update, reset = torch.sigmoid(projected_t[:, :2 * size] + recurrent[:, :2 * size]).chunk(2, dim=1)
            candidate = torch.tanh(projected_t[:, 2 * size:] + reset * recurrent[:, 2 * size:])
            hidden = update * hidden + (1 - update) * candidate
            if watch is not None:
                hooks.watch(t, hidden)
        return hidden

    def fused(self, inputs: torch.Tensor) -> torch.Tensor:
        """torch's GRU kernel: gates (r, z, n), n the candidate; with the hidden-side bias zero, r scales h U_h
        alone, as in the loop."""
        zeros = inputs.new_zeros(1, inputs.shape[0], self.hidden_size)
        _, last = self.through_kernel(torch._VF.gru, inputs, zeros, ("r", "z", "h"))
        return last[0]


GATED_LAYERS: dict[str, type[GatedRecurrence]] = {"lstm": LSTM, "gru": GRU}


def gated_classifier(name: str, spec: DataSpec, input_size: int, hidden_size: int, backend: GatedBackend,
                     init: Init) -> nn.Module:
    check_token_classification(spec, name)
    layer = GATED_LAYERS[name]
    return SequenceClassifier(spec.vocab_size, input_size, spec.output_dim,
                              lambda inputs: layer(inputs, hidden_size, backend), init)


@MODELS.register("lstm")
def lstm(spec: DataSpec, *, input_size: PositiveInt = 32, hidden_size: PositiveInt = 32,
         backend: GatedBackend = "loop", init: Init = "book") -> nn.Module:
    """The book's LSTM (6.3) in the SRN's place: gates i, f, o and candidate c, each with its own W, U, b.

    backend: loop (default; gives ∂L/∂h_t and ∂L/∂c_t) or fused (torch's LSTM kernel). init: as the srn's.
    """
    return gated_classifier("lstm", spec, input_size, hidden_size, backend, init)


@MODELS.register("gru")
def gru(spec: DataSpec, *, input_size: PositiveInt = 32, hidden_size: PositiveInt = 32,
        backend: GatedBackend = "loop", init: Init = "book") -> nn.Module:
    """A GRU in the SRN's place: update gate z, reset gate r and candidate h, each with its own W, U, b.

    backend: loop (default; gives ∂L/∂h_t) or fused (torch's GRU kernel). init: as the srn's.
    """
    return gated_classifier("gru", spec, input_size, hidden_size, backend, init)
