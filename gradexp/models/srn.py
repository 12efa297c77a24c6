"""The simple recurrent network of E1 (NNDL practice book 6.1, seed 002).

Embedding(10 digits -> input_size) -> SRN -> Linear(hidden_size -> classes) on the last hidden
state. The SRN has exactly three parameters, named as in the book so the metric columns read
`rnn_model.W`, `rnn_model.U`, `rnn_model.b`:

    h_0 = 0,    h_t = tanh(x_t W + h_{t-1} U + b)

with W (input_size x hidden_size), U (hidden_size x hidden_size), b (1 x hidden_size).
W, U and b start Xavier-uniform, as Paddle's `create_parameter` does by default (the book's framework).
"""

from __future__ import annotations

import torch
from torch import nn

from gradexp.config.types import PositiveInt
from gradexp.data.base import DataSpec
from gradexp.errors import ConfigError
from gradexp.models import MODELS


class SRN(nn.Module):
    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.W = nn.Parameter(torch.empty(input_size, hidden_size))
        self.U = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b = nn.Parameter(torch.empty(1, hidden_size))
        for parameter in (self.W, self.U, self.b):
            nn.init.xavier_uniform_(parameter)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs: (batch, time, input_size) -> last hidden state (batch, hidden_size)."""
        hidden = inputs.new_zeros(inputs.shape[0], self.hidden_size)
        for step in range(inputs.shape[1]):
            hidden = torch.tanh(inputs[:, step] @ self.W + hidden @ self.U + self.b)
        return hidden


class SequenceClassifier(nn.Module):
    """The book's Model_RNN4SeqClass: embed the digits, run the SRN, classify its last state."""

    default_plot_parameters = ("rnn_model.W", "rnn_model.U", "rnn_model.b")

    def __init__(self, vocab_size: int, input_size: int, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, input_size)
        self.rnn_model = SRN(input_size, hidden_size)
        self.classifier = nn.Linear(hidden_size, num_classes)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.rnn_model(self.embedding(inputs)))


@MODELS.register("srn")
def srn(spec: DataSpec, *, input_size: PositiveInt = 32, hidden_size: PositiveInt = 32) -> nn.Module:
    if spec.vocab_size is None or spec.task != "classification":
        raise ConfigError("", "model.name", "model 'srn' needs token sequences with class labels (dataset digit_sum)")
    return SequenceClassifier(spec.vocab_size, input_size, hidden_size, spec.output_dim)
