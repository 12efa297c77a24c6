"""Backpropagation through time written out by hand: the SRN's `bptt` backend (gradexp.models.srn).

The recurrence h_t = tanh(x_t W + h_{t-1} U + b) and its gradients, as one autograd node for the whole
sequence (the fastest on a CPU at E1's sizes: see benchmarks/README.md), with a vmap batching rule, so a
vectorized sweep runs one batched recurrence for all its points. Gradients equal the book's loop
backend's in float64 (tests/test_srn_backends.py, and gradexp gradcheck).
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from gradexp.models.base import TimeGradients

def _product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a b for matrices, or for stacks of them (a vectorized sweep's points along a leading axis)."""
    return torch.mm(a, b) if a.dim() == 2 else torch.bmm(a, b)


def _product_plus(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """c + a b, for matrices or stacks of them."""
    return torch.addmm(c, a, b) if a.dim() == 2 else torch.baddbmm(c, a, b)


def _transposed(a: torch.Tensor) -> torch.Tensor:
    return a.transpose(-1, -2)


def _fold_time(steps: torch.Tensor) -> torch.Tensor:
    """(time, [points,] batch, n) -> ([points,] time * batch, n): every step's rows in one matrix per point."""
    return steps.movedim(0, -3).flatten(-3, -2)


def _unfold_time(rows: torch.Tensor, length: int) -> torch.Tensor:
    """The inverse of _fold_time."""
    return rows.unflatten(-2, (length, -1)).movedim(-3, 0)


def tanh_states(projected: torch.Tensor, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """h_t = tanh(projected_t + h_{t-1} U) from h_0 = 0; projected (time, [points,] batch, hidden) -> (h_T, all states).

    Time-major, so each step's slice, and the states before each step, are contiguous blocks. Each
    state is written straight into the block all of them are kept in: for a batch of many points the
    block is megabytes, and stacking it afterwards would copy it once more.
    """
    states = torch.empty_like(projected)
    hidden = projected.new_zeros(projected.shape[1:])
    for projected_t, state in zip(projected.unbind(0), states.unbind(0)):
        hidden = torch.tanh(_product_plus(projected_t, hidden, U), out=state)
    # h_T is a result of its own, not a view into the states (which take no gradient)
    return hidden.clone(), states


def backpropagate_through_time(grad_last: torch.Tensor, states: torch.Tensor, U: torch.Tensor,
                               time_gradients: Optional[TimeGradients] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """δ_t = ∂L/∂(pre-activation at t) for every t, from ∂L/∂h_T; and ∂L/∂U = Σ_{t≥2} h_{t−1}ᵀ δ_t.

    states and the returned deltas are (time, [points,] batch, hidden). The recursion passes through
    ∂L/∂h_t = δ_{t+1} Uᵀ (and ∂L/∂h_T itself): with `time_gradients` enabled, their norms go there.
    """
    # tanh' = 1 − h_t² for every step in one pass: per step it would be two more small operations each
    # step, which cost a single run more than the extra block costs a batch
    slopes = states.square().neg_().add_(1)
    U_transposed = _transposed(U)
    deltas, into_states = [], []
    keep = time_gradients is not None and time_gradients.enabled
    delta_into_state = grad_last
    for t in range(states.shape[0] - 1, -1, -1):
        if keep:
            into_states.append(delta_into_state)
        delta = delta_into_state * slopes[t]
        deltas.append(delta)
        if t:
            delta_into_state = _product(delta, U_transposed)
    deltas = torch.stack(deltas[::-1])
    if keep:
        # L2 over the batch and the units: (time,) or (time, points)
        time_gradients.norms = torch.linalg.vector_norm(torch.stack(into_states[::-1]), dim=(-2, -1))
    # h_0 = 0 adds nothing to ∂L/∂U
    grad_U = _product(_transposed(_fold_time(states[:-1])), _fold_time(deltas[1:]))
    return deltas, grad_U


def _stacked_arguments(info: Any, in_dims: tuple[Optional[int], ...], *arguments: Any) -> list[Any]:
    """vmap's batched arguments with the batch as their leading axis (points), unbatched tensors repeated, and
    anything else (the TimeGradients) as it is."""
    return [argument.movedim(dim, 0) if dim is not None
            else argument.expand(info.batch_size, *argument.shape) if isinstance(argument, torch.Tensor)
            else argument for argument, dim in zip(arguments, in_dims)]


class BackpropagationThroughTime(torch.autograd.Function):
    """h_t = tanh(x_t W + h_{t-1} U + b) with its backward written out (BPTT, NNDL section 6.2.1).

    Forward keeps every state h_1..h_T. With δ_t = ∂L/∂(x_t W + h_{t-1} U + b) and ∂L/∂h_T given:

        δ_T = ∂L/∂h_T ⊙ (1 − h_T²),    δ_{t−1} = (δ_t Uᵀ) ⊙ (1 − h_{t−1}²)
        ∂L/∂W = Σ_t x_tᵀ δ_t,    ∂L/∂U = Σ_{t≥2} h_{t−1}ᵀ δ_t,    ∂L/∂b = Σ_t 1ᵀ δ_t,    ∂L/∂x_t = δ_t Wᵀ

    Only the two recursions run step by step; the sums are matrix products over all steps at once.
    Autograd records one node for the whole sequence instead of a handful per step, which is most
    of the loop backend's cost at E1's sizes.

    Every tensor may carry a leading axis of points (inputs ([points,] batch, time, input), W
    ([points,] input, hidden), ...): the products become batched ones. That is the batching rule
    torch.func.vmap uses (`vmap` below), so a vectorized sweep runs one batched recurrence for all
    its points instead of vmap replaying every operation.
    """

    @staticmethod
    def forward(inputs: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                time_gradients: Optional[TimeGradients]) -> tuple[torch.Tensor, torch.Tensor]:
        steps = inputs.movedim(-2, 0)  # (time, [points,] batch, input)
        # x_t W + b for every step in one product
        projected = _unfold_time(_product_plus(b, _fold_time(steps), W), steps.shape[0])
        return tanh_states(projected, U)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
        sequence, W, U, _, ctx.time_gradients = inputs
        _, states = output
        # The states are kept for the backward, not offered as a result to differentiate.
        ctx.mark_non_differentiable(states)
        # Nothing flows back into the states: no block of zeros for their gradient.
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(sequence, W, U, states)

    @staticmethod
    def backward(ctx: Any, grad_last: torch.Tensor, _: Optional[torch.Tensor]) -> tuple[Optional[torch.Tensor], ...]:
        if grad_last is None:  # nothing used h_T
            return None, None, None, None, None
        sequence, W, U, states = ctx.saved_tensors
        delta, grad_U = backpropagate_through_time(grad_last, states, U, ctx.time_gradients)
        flat_delta = _fold_time(delta)
        grad_W = _product(_transposed(_fold_time(sequence.movedim(-2, 0))), flat_delta)
        grad_b = flat_delta.sum(-2, keepdim=True)
        grad_inputs = None
        if ctx.needs_input_grad[0]:
            grad_inputs = _unfold_time(_product(flat_delta, _transposed(W)), delta.shape[0]).movedim(0, -2)
        return grad_inputs, grad_W, grad_U, grad_b, None

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Optional[int], ...], *arguments: Any) -> tuple[Any, tuple[int, int]]:
        # the states are (time, points, ...)
        return BackpropagationThroughTime.apply(*_stacked_arguments(info, in_dims, *arguments)), (0, 1)


def _table_rows(tokens: torch.Tensor, vocabulary: int) -> torch.Tensor:
    """Each token's row in the ([points x] vocabulary, hidden) table, time-major: (time, [points,] batch)."""
    steps = tokens.movedim(-1, 0)
    if tokens.dim() == 3:
        steps = steps + vocabulary * torch.arange(tokens.shape[0], device=tokens.device)[:, None]
    return steps


class EmbeddedBackpropagationThroughTime(torch.autograd.Function):
    """The same, with the inputs the embedding rows of tokens: x_t = E[d_t].

    Then x_t W + b = (E W + b)[d_t], so the input projection is one row lookup in a (vocabulary x
    hidden) table instead of a product over every step, and with S[v] = Σ_{t, batch: d_t = v} δ_t
    (the deltas summed per token):

        ∂L/∂W = Eᵀ S,    ∂L/∂E = S Wᵀ,    ∂L/∂b = Σ_v S[v]

    For E1's ten digits that removes the three largest products of a step. Points along a leading
    axis as in BackpropagationThroughTime.
    """

    @staticmethod
    def forward(tokens: torch.Tensor, E: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                time_gradients: Optional[TimeGradients]) -> tuple[torch.Tensor, torch.Tensor]:
        table = _product_plus(b, E, W)
        rows = _table_rows(tokens, E.shape[-2])
        projected = table.flatten(0, -2).index_select(0, rows.flatten()).view(*rows.shape, -1)
        return tanh_states(projected, U)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
        tokens, E, W, U, _, ctx.time_gradients = inputs
        _, states = output
        ctx.mark_non_differentiable(states)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(tokens, E, W, U, states)

    @staticmethod
    def backward(ctx: Any, grad_last: torch.Tensor, _: Optional[torch.Tensor]) -> tuple[Optional[torch.Tensor], ...]:
        if grad_last is None:
            return None, None, None, None, None, None
        tokens, E, W, U, states = ctx.saved_tensors
        delta, grad_U = backpropagate_through_time(grad_last, states, U, ctx.time_gradients)
        rows = _table_rows(tokens, E.shape[-2])
        per_token = delta.new_zeros(E.shape[:-1].numel(), delta.shape[-1]).index_add(
            0, rows.flatten(), delta.flatten(0, -2)).view(*E.shape[:-1], -1)
        grad_W = _product(_transposed(E), per_token)
        grad_E = _product(per_token, _transposed(W))
        grad_b = per_token.sum(-2, keepdim=True)
        return None, grad_E, grad_W, grad_U, grad_b, None

    @staticmethod
    def vmap(info: Any, in_dims: tuple[Optional[int], ...], *arguments: Any) -> tuple[Any, tuple[int, int]]:
        return EmbeddedBackpropagationThroughTime.apply(*_stacked_arguments(info, in_dims, *arguments)), (0, 1)


def bptt_recurrence(inputs: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                    time_gradients: Optional[TimeGradients] = None) -> torch.Tensor:
    """The same recurrence, differentiated by BackpropagationThroughTime; inputs (batch, time, input) -> h_T."""
    last, _ = BackpropagationThroughTime.apply(inputs, W, U, b, time_gradients)
    return last


def bptt_token_recurrence(tokens: torch.Tensor, E: torch.Tensor, W: torch.Tensor, U: torch.Tensor, b: torch.Tensor,
                          time_gradients: Optional[TimeGradients] = None) -> torch.Tensor:
    """The recurrence over the embedded tokens x_t = E[d_t], differentiated by EmbeddedBackpropagationThroughTime."""
    last, _ = EmbeddedBackpropagationThroughTime.apply(tokens, E, W, U, b, time_gradients)
    return last
