"""The one interface every clip mode implements, so the runner never branches on the mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch


@dataclass(frozen=True)
class ClipOutcome:
    """What a clip step reports, kept on the device (no host sync in the hot path).

    threshold: 0-d tensor, the threshold applied this step (NaN when the mode has none, e.g. `none`).
    clipped: 0-d bool tensor, whether any gradient was changed.
    """

    threshold: torch.Tensor
    clipped: torch.Tensor


class GradientClipper(Protocol):
    def clip(self, grads: list[torch.Tensor], params: list[torch.Tensor]) -> ClipOutcome:
        """Clip `grads` in place (params are there for rules that scale by the weights)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Stateless:
    """state_dict/load_state_dict for rules that keep nothing between steps."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


def constant(value: float, like: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.tensor(value, device=like.device, dtype=dtype)
