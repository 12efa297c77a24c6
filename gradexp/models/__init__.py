"""Models, looked up by name. Adding one: a module with a `@MODELS.register` builder, and its import below.

A builder takes the DataSpec positionally and its config keys as keyword-only arguments, and
returns an `nn.Module` whose `forward(inputs)` gives logits (classification) or predictions, and
which is a `gradexp.models.base.Model`: it declares `default_plot_parameters` (the parameter names its
gradient-norm plot shows by default), `recurrent_parameters` (its recurrent matrices), `layer_parameters` (a
feed-forward stack's layer weights) and `output_axes` (for parameters not laid out as torch's layers
lay theirs, e.g. `{"rnn_model.W": 1}`, the axis that indexes output units, for unit-wise clip rules: agc).
"""

from gradexp.registry import Registry

MODELS: Registry = Registry("model")

from gradexp.models import srn  # noqa: E402,F401  (registers its builder)
from gradexp.models import mlp  # noqa: E402,F401
from gradexp.models import gated  # noqa: E402,F401
