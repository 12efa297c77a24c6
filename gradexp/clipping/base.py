"""The one interface every clip mode implements, so the runner never branches on the mode."""

from __future__ import annotations

import functools
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
    """A 0-d tensor on `like`'s device, made once per value: every step's outcome reuses it, read-only."""
    return _constant(repr(float(value)), like.device, dtype)


@functools.lru_cache(maxsize=256)
def _constant(value: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Keyed by the value's text: NaN never equals itself, so as a float key it would miss every time.
    return torch.tensor(float(value), device=device, dtype=dtype)
