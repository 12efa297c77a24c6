"""The joint L2 norm of all gradients, and rescaling them to a limit: shared by AutoClip and ZClip.

Both rules choose a limit c for the total norm n = ‖(‖g_1‖, ..., ‖g_k‖)‖ and then apply
every g ← g · min(1, c / n). The limit and the decision stay on the device.
"""

from __future__ import annotations

import torch


def total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """n = ‖(‖g_1‖_2, ..., ‖g_k‖_2)‖_2, accumulated in float64 as the runner's `grad_norm/total` is."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0, dtype=torch.float64)))


def rescale_to_norm(grads: list[torch.Tensor], norm: torch.Tensor, limit: torch.Tensor) -> torch.Tensor:
    """Every g ← g · c / n when n > c, in place; returns the 0-d bool `n > c`.

    Unlike torch's clip_grad_norm_ no 1e-6 is added to n, so a clipped gradient has norm c exactly.
    A NaN limit (no history yet) compares false and leaves the gradients alone.
    """
    exceeds = norm > limit
    # When n <= c the division is never used, so n = c = 0 cannot leak a NaN into the gradients.
    torch._foreach_mul_(grads, torch.where(exceeds, limit / norm, 1.0).to(grads[0].dtype))
    return exceeds
