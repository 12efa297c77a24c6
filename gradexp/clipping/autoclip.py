"""AutoClip: clip the total norm at a percentile of every total norm seen so far.

Seetharaman, Wichern, Pardo, Le Roux 2020, "AutoClip: Adaptive Gradient Clipping for Source
Separation Networks" (MLSP 2020). At step t, with n_s the total L2 gradient norm of step s:

    c_t = percentile_p(n_1, ..., n_t)          (the current step's norm included)
    every g ← g · min(1, c_t / n_t)

As in the authors' reference code (github.com/pseeth/autoclip, autoclip.py), the current norm joins
the history before the percentile is taken, so the first step's threshold is its own norm and it is
not clipped; the percentile interpolates linearly (`np.percentile`'s default, `torch.quantile`'s too).
The reference clips with clip_grad_norm_ and so divides by n_t + 1e-6; here a clipped step has norm
c_t exactly. The history lives in a device buffer that doubles when full, so no step waits for the host.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import torch

from gradexp.clipping import CLIP_MODES
from gradexp.clipping.base import ClipOutcome
from gradexp.clipping.total_norm import rescale_to_norm, total_norm
from gradexp.models.base import Model
from gradexp.value_types import Range

# Room for this many norms before the history buffer first grows.
INITIAL_HISTORY_CAPACITY = 1024


class AutoClip:
    def __init__(self, percentile: float) -> None:
        self.quantile = percentile / 100
        # _history[:_count] are the norms seen so far; the rest is room to grow.
        self._history: Optional[torch.Tensor] = None
        self._count = 0

    @torch.no_grad()
    def clip(self, grads: list[torch.Tensor], params: list[torch.Tensor]) -> ClipOutcome:
        norm = total_norm(grads)
        self._remember(norm)
        threshold = torch.quantile(self._history[: self._count], self.quantile)
        return ClipOutcome(threshold=threshold, clipped=rescale_to_norm(grads, norm, threshold))

    def _remember(self, norm: torch.Tensor) -> None:
        if self._history is None or self._count == len(self._history):
            grown = norm.new_empty(max(INITIAL_HISTORY_CAPACITY, 2 * self._count))
            if self._count:
                grown[: self._count] = self._history[: self._count]
            self._history = grown
        self._history[self._count] = norm
        self._count += 1

    def state_dict(self) -> dict[str, Any]:
        """The norms seen so far (float64, in step order)."""
        seen = self._history[: self._count] if self._history is not None else torch.empty(0, dtype=torch.float64)
        return {"norms": seen.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Kept exactly full, so the next step regrows the buffer on the gradients' device.
        self._history = state["norms"].clone()
        self._count = len(self._history)


@CLIP_MODES.register("autoclip")
def autoclip(model: Model, *, percentile: Annotated[float, Range(ge=0, le=100)] = 10.0) -> AutoClip:
    return AutoClip(percentile)
