"""Every registered model declares what gradexp reads from it (gradexp.models.base.Model), and its declarations hold."""

from __future__ import annotations

import pytest
import torch

from gradexp.clipping import CLIP_MODES
from gradexp.clipping.agc import OUTPUT_AXIS_BY_LAYER
from gradexp.data.base import DataSpec
from gradexp.models import MODELS
from gradexp.models.base import Model

# A small example of each registered model: its data and its config keys (batch norm adds the mlp's vectors).
EXAMPLES = {
    "srn": (DataSpec("classification", (6,), 3, vocab_size=5), {"input_size": 4, "hidden_size": 3}),
    "mlp": (DataSpec("regression", (4,), 2), {"hidden": [3, 3], "batch_norm": True}),
    "lstm": (DataSpec("classification", (6,), 3, vocab_size=5), {"input_size": 4, "hidden_size": 3}),
    "gru": (DataSpec("classification", (6,), 3, vocab_size=5), {"input_size": 4, "hidden_size": 3}),
}


def test_every_registered_model_has_an_example() -> None:
    assert sorted(EXAMPLES) == MODELS.names()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_registered_model_declares_the_model_protocol(name: str) -> None:
    spec, params = EXAMPLES[name]
    model = MODELS.get(name)(spec, **params)
    assert isinstance(model, torch.nn.Module) and isinstance(model, Model)
    parameters = dict(model.named_parameters())
    # Declared on the model's own class or instance, not found by a fallback.
    assert "default_plot_parameters" in vars(type(model)) or "default_plot_parameters" in vars(model)
    assert "output_axes" in vars(type(model)) or "output_axes" in vars(model)
    assert "recurrent_parameters" in vars(type(model)) or "recurrent_parameters" in vars(model)
    assert "layer_parameters" in vars(type(model)) or "layer_parameters" in vars(model)
    assert set(model.layer_parameters) <= set(parameters)
    for name in model.recurrent_parameters:  # square matrices: h_{t-1} U has h_t's shape
        assert parameters[name].dim() == 2 and parameters[name].shape[0] == parameters[name].shape[1]
    plotted = list(model.default_plot_parameters)
    assert plotted and set(plotted) <= set(parameters) and len(set(plotted)) == len(plotted)
    for parameter_name, axis in model.output_axes.items():
        assert parameters[parameter_name].dim() >= 2 and 0 <= axis < parameters[parameter_name].dim()


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_matrix_of_a_registered_model_has_known_units(name: str) -> None:
    """A matrix is declared in output_axes or is a torch layer's weight, so agc clips every model unit by unit."""
    spec, params = EXAMPLES[name]
    model = MODELS.get(name)(spec, **params)
    layer_weights = {f"{prefix}.weight" if prefix else "weight" for prefix, module in model.named_modules()
                     if isinstance(module, tuple(OUTPUT_AXIS_BY_LAYER))}
    for parameter_name, parameter in model.named_parameters():
        if parameter.squeeze().dim() > 1:
            assert parameter_name in model.output_axes or parameter_name in layer_weights, parameter_name
    CLIP_MODES.get("agc")(model, threshold=0.01)  # builds: no parameter without units
