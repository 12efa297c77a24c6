"""The mlp model: names and shapes, the forward pass by hand, each initialiser's distribution, batch norm."""

from __future__ import annotations

import math

import pytest
import torch

from gradexp.config.loading import config_from_dict
from gradexp.data.base import DataSpec
from gradexp.errors import ConfigError
from gradexp.models import MODELS

VECTORS = DataSpec(task="classification", input_shape=(5,), output_dim=2)


def build(spec: DataSpec = VECTORS, **settings):
    return MODELS.get("mlp")(spec, **{"hidden": [4, 3], **settings})


def test_parameters_are_named_by_layer_and_sized_from_the_data() -> None:
    model = build()
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes == {
        "layers.0.weight": (4, 5), "layers.0.bias": (4,),
        "layers.1.weight": (3, 4), "layers.1.bias": (3,),
        "layers.2.weight": (2, 3), "layers.2.bias": (2,),
    }
    assert model.default_plot_parameters == ("layers.0.weight", "layers.1.weight", "layers.2.weight")
    images = build(DataSpec(task="classification", input_shape=(2, 3), output_dim=10), hidden=[])
    assert dict(images.named_parameters())["layers.0.weight"].shape == (10, 6)
    assert images(torch.zeros(7, 2, 3)).shape == (7, 10)  # inputs are flattened


@pytest.mark.parametrize("activation, output_activation, hidden_rule, output_rule", [
    ("relu", "none", torch.relu, lambda z: z),
    ("sigmoid", "sigmoid", torch.sigmoid, torch.sigmoid),
    ("tanh", "relu", torch.tanh, torch.relu),
])
def test_forward_is_the_layer_rule(activation, output_activation, hidden_rule, output_rule) -> None:
    torch.manual_seed(0)
    model = build(activation=activation, output_activation=output_activation)
    inputs = torch.randn(6, 5)
    weights = dict(model.named_parameters())
    hidden = inputs
    for index in range(2):
        hidden = hidden_rule(hidden @ weights[f"layers.{index}.weight"].T + weights[f"layers.{index}.bias"])
    expected = output_rule(hidden @ weights["layers.2.weight"].T + weights["layers.2.bias"])
    torch.testing.assert_close(model(inputs), expected)


def uniform_bound_holds(weight: torch.Tensor, bound: float) -> None:
    """Every value inside the bound, the extremes near it, and the spread of a uniform law (bound / sqrt 3)."""
    assert weight.abs().max() <= bound
    assert weight.abs().max() > 0.99 * bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)


WIDE = DataSpec(task="regression", input_shape=(400,), output_dim=1)


def first_layer(init: str, **settings) -> torch.nn.Linear:
    torch.manual_seed(0)
    return build(WIDE, hidden=[300], init=init, **settings).layers[0]


def test_he_uniform_bound_is_sqrt_6_over_fan_in() -> None:
    layer = first_layer("he_uniform")
    uniform_bound_holds(layer.weight, math.sqrt(6 / 400))
    assert torch.count_nonzero(layer.bias) == 0


def test_xavier_uniform_bound_is_sqrt_6_over_fan_in_plus_fan_out() -> None:
    layer = first_layer("xavier_uniform")
    uniform_bound_holds(layer.weight, math.sqrt(6 / (400 + 300)))
    assert torch.count_nonzero(layer.bias) == 0


def test_xavier_normal_has_variance_2_over_fan_in_plus_fan_out() -> None:
    layer = first_layer("xavier_normal")
    assert layer.weight.mean().abs() < 0.01 * math.sqrt(2 / 700)
    assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / 700), rel=0.01)
    assert torch.count_nonzero(layer.bias) == 0


def test_truncated_normal_stays_within_two_std() -> None:
    std = 0.1
    layer = first_layer("truncated_normal", init_std=std)
    assert layer.weight.abs().max() <= 2 * std and layer.weight.abs().max() > 1.95 * std
    # A unit normal cut at +-2 has variance 1 - 2 * 2 phi(2) / (Phi(2) - Phi(-2)).
    density = math.exp(-2) / math.sqrt(2 * math.pi)
    mass = math.erf(2 / math.sqrt(2))
    assert layer.weight.std().item() == pytest.approx(std * math.sqrt(1 - 4 * density / mass), rel=0.01)
    assert torch.count_nonzero(layer.bias) == 0


def test_default_is_torchs_linear_initialisation() -> None:
    layer = first_layer("default")
    uniform_bound_holds(layer.weight, 1 / math.sqrt(400))
    assert layer.bias.abs().max() <= 1 / math.sqrt(400) and torch.count_nonzero(layer.bias) == 300


@pytest.mark.parametrize("settings", [{"init": "truncated_normal"}, {"init": "he_uniform", "init_std": 0.1}])
def test_init_std_goes_with_truncated_normal_only(settings) -> None:
    with pytest.raises(ConfigError, match="model.init_std"):
        build(**settings)


def test_batch_norm_normalises_each_hidden_pre_activation() -> None:
    torch.manual_seed(0)
    model = build(activation="sigmoid", batch_norm=True)
    names = [name for name, _ in model.named_parameters()]
    # Hidden linear layers lose their bias: the norm's shift beta takes its role.
    assert names == ["layers.0.weight", "layers.1.weight", "layers.2.weight", "layers.2.bias",
                     "norms.0.weight", "norms.0.bias", "norms.1.weight", "norms.1.bias"]
    with torch.no_grad():
        model.norms[0].weight.fill_(2.0)
        model.norms[0].bias.fill_(0.5)
    inputs = torch.randn(16, 5) * 7 + 3
    weights = dict(model.named_parameters())

    def normalised(z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)

    hidden = torch.sigmoid(2.0 * normalised(inputs @ weights["layers.0.weight"].T) + 0.5)
    hidden = torch.sigmoid(normalised(hidden @ weights["layers.1.weight"].T))
    expected = hidden @ weights["layers.2.weight"].T + weights["layers.2.bias"]
    torch.testing.assert_close(model(inputs), expected)


def test_float64_and_token_data() -> None:
    model = build().double()
    assert model(torch.randn(3, 5, dtype=torch.float64)).dtype == torch.float64
    tokens = DataSpec(task="classification", input_shape=(6,), output_dim=19, vocab_size=10)
    with pytest.raises(ConfigError, match="model 'mlp' takes feature vectors"):
        build(tokens)


@pytest.mark.parametrize("model, message", [
    ({"name": "mlp"}, "model.hidden: required by model 'mlp'"),
    ({"name": "mlp", "hidden": [8, 0]}, "model.hidden: item 1: expected a value >= 1, got 0"),
    ({"name": "mlp", "hidden": [8], "activation": "softplus"}, "model.activation: expected one of"),
    ({"name": "mlp", "hidden": [8], "init": "lecun"}, "model.init: expected one of"),
])
def test_config_keys_are_checked(model, message) -> None:
    raw = {"data": {"name": "digits"}, "model": model, "optimizer": {"name": "sgd", "lr": 0.1}}
    with pytest.raises(ConfigError, match=message):
        config_from_dict(raw, source="inline.yaml", name="inline")


def test_output_activation_softmax_is_not_offered() -> None:
    """Softmax belongs in the cross-entropy loss: a softmax output would apply it twice."""
    with pytest.raises(ConfigError, match="model.output_activation: expected one of 'none', 'relu', 'sigmoid', 'tanh'"):
        config_from_dict({"data": {"name": "digits"}, "optimizer": {"name": "sgd", "lr": 0.1},
                          "model": {"name": "mlp", "hidden": [8], "output_activation": "softmax"}},
                         source="inline.yaml", name="inline")
