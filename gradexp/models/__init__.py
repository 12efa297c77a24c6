"""Models, looked up by name. Adding one: a module with a `@MODELS.register` builder, and its import below.

A builder takes the DataSpec positionally and its config keys as keyword-only arguments, and
returns an `nn.Module` whose `forward(inputs)` gives logits (classification) or predictions.
A model may set `default_plot_parameters`: the parameter names its gradient-norm plot shows by default.
"""

from gradexp.registry import Registry

MODELS: Registry = Registry("model")

from gradexp.models import srn  # noqa: E402,F401  (registers its builder)
from gradexp.models import mlp  # noqa: E402,F401
