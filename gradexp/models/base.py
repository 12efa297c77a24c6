"""What gradexp reads from a model beyond nn.Module's own API, declared here rather than asked for by name.

Every registered builder returns an `nn.Module` that is also a `Model`: it states every attribute, even
when there is nothing to say (an empty `output_axes`), so no caller needs hasattr or getattr to find them.
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence, runtime_checkable


@runtime_checkable
class Model(Protocol):
    """The declarations of a registered model (an nn.Module), read by the runner and by unit-wise clip rules.

    default_plot_parameters: the parameters (names as `named_parameters()` gives them) whose gradient norms
        the run's plot shows when `plot.params` does not choose them.
    recurrent_parameters: the recurrent matrices (h_t = f(... + h_{t-1} U)), whose largest singular value
        says whether gradients through time can explode or must vanish (record.sigma_max); none for a
        feed-forward model.
    output_axes: for each parameter (dotted name) of two or more dimensions that is not the weight of one of
        torch's own layers (nn.Linear, nn.Conv*, nn.Embedding: see gradexp.clipping.agc), the axis that
        indexes its output units; agc normalises each unit over the other axes. E.g. the SRN stores W as
        (in x hidden), so `{"rnn_model.W": 1}`.
    """

    default_plot_parameters: Sequence[str]
    recurrent_parameters: Sequence[str]
    output_axes: Mapping[str, int]
