"""A multilayer perceptron: E2's Keras Dense stack, E3's two-layer net, E4's MNIST MLP, E5's deep sigmoid stack.

Layer i computes z_i = h_{i-1} W_i^T + b_i; hidden layers apply `activation`, the last one
`output_activation` (none: logits for cross-entropy, or a linear regression output). Parameters are
named `layers.<i>.weight` / `layers.<i>.bias`, so metrics.csv says which layer a norm belongs to.

Initialisers (fan_in / fan_out: a layer's input / output width):
  default          torch's Linear: W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  he_uniform       W ~ U(-sqrt(6/fan_in), sqrt(6/fan_in))                 (He et al. 2015; Keras he_uniform, E2)
  xavier_uniform   W ~ U(-sqrt(6/(fan_in+fan_out)), +sqrt(6/(fan_in+fan_out)))  (Glorot & Bengio 2010; E5)
  xavier_normal    W ~ N(0, 2/(fan_in+fan_out))
  truncated_normal W ~ N(0, init_std^2) redrawn outside +-2 init_std    (tf.truncated_normal, E4 with std 0.1)
Every named initialiser starts the biases at zero, as Keras and E4's TensorFlow code do.

`batch_norm: true` normalises each hidden layer's pre-activation over the batch and then applies
a learned scale and shift, BN(z) = gamma (z - mean) / sqrt(var + 1e-5) + beta, before the activation,
as Ioffe & Szegedy (2015) place it; E5 (seed 003) describes it as normalising each layer's input to
zero mean and unit variance. The linear layer before it has no bias (beta takes its role), and the
norm layers' parameters are `norms.<i>.weight` (gamma) and `norms.<i>.bias` (beta).
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Optional

import torch
from torch import nn

from gradexp.data.base import DataSpec
from gradexp.errors import ConfigError
from gradexp.models import MODELS
from gradexp.value_types import PositiveFloat, PositiveInt

Activation = Literal["relu", "sigmoid", "tanh"]
OutputActivation = Literal["none", "relu", "sigmoid", "tanh"]
Initialiser = Literal["default", "he_uniform", "xavier_uniform", "xavier_normal", "truncated_normal"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "none": nn.Identity, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
}


def truncated_normal_(weight: torch.Tensor, std: float) -> torch.Tensor:
    """N(0, std^2) redrawn outside [-2 std, 2 std], as tf.truncated_normal does."""
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def initialise(layer: nn.Linear, init: Initialiser, std: Optional[float]) -> None:
    """Re-initialise one layer in place; `default` keeps torch's own initialisation."""
    if init == "default":
        return
    weight_rules: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        # kaiming_uniform_ for relu has bound gain * sqrt(3 / fan_in) with gain sqrt(2): sqrt(6 / fan_in).
        "he_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
        "xavier_uniform": nn.init.xavier_uniform_,
        "xavier_normal": nn.init.xavier_normal_,
        "truncated_normal": lambda w: truncated_normal_(w, std),
    }
    weight_rules[init](layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class MLP(nn.Module):
    """A gradexp.models.base.Model: its default plot is set per instance, one weight per layer."""

    # Every matrix is an nn.Linear's weight, whose units agc knows; batch norm's gamma and beta are vectors.
    output_axes: dict[str, int] = {}

    def __init__(self, sizes: list[int], activation: Activation, output_activation: OutputActivation,
                 init: Initialiser, init_std: Optional[float], batch_norm: bool) -> None:
        super().__init__()
        hidden_count = len(sizes) - 2
        self.layers = nn.ModuleList(
            nn.Linear(fan_in, fan_out, bias=not (batch_norm and index < hidden_count))
            for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]))
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(width) for width in sizes[1:-1]) if batch_norm else None
        self.activation = ACTIVATIONS[activation]()
        self.output_activation = ACTIVATIONS[output_activation]()
        for layer in self.layers:
            initialise(layer, init, init_std)
        # One weight tensor per layer: the grad-norm plot then shows the norms from the first layer to the last.
        self.default_plot_parameters = tuple(f"layers.{index}.weight" for index in range(len(self.layers)))
        self.recurrent_parameters = ()
        self.layer_parameters = self.default_plot_parameters

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = inputs.flatten(1)
        for index, layer in enumerate(self.layers[:-1]):
            hidden = layer(hidden)
            if self.norms is not None:
                hidden = self.norms[index](hidden)
            hidden = self.activation(hidden)
        return self.output_activation(self.layers[-1](hidden))


@MODELS.register("mlp")
def mlp(
    spec: DataSpec,
    *,
    hidden: list[PositiveInt],
    activation: Activation = "relu",
    output_activation: OutputActivation = "none",
    init: Initialiser = "default",
    init_std: Optional[PositiveFloat] = None,
    batch_norm: bool = False,
) -> nn.Module:
    """Input width from the data, then `hidden` widths, then the data's output width (classes or targets).

    `init_std` is the standard deviation of `init: truncated_normal` (required there, unused otherwise).
    """
    if spec.vocab_size is not None:
        raise ConfigError("", "model.name", "model 'mlp' takes feature vectors, not token ids; "
                                            "use a vector dataset (regression, random, digits, mnist, classification)")
    if (init == "truncated_normal") != (init_std is not None):
        raise ConfigError("", "model.init_std", "set init_std exactly when init is truncated_normal "
                                                "(E4 uses init: truncated_normal, init_std: 0.1)")
    sizes = [math.prod(spec.input_shape), *hidden, spec.output_dim]
    return MLP(sizes, activation, output_activation, init, init_std, batch_norm)
