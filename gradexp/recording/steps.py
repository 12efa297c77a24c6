"""Recording each training step: its values kept on the device, written as metrics.csv rows in blocks.

A step only appends its tensors to lists: no device work, no host sync. `flush` stacks them in a
few operations, adds the total norms, copies the block to the host once, writes its rows and checks
them for divergence (a non-finite loss or pre-clip norm).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch

from gradexp.errors import DataError
from gradexp.recording.files import CsvLog
from gradexp.recording.layout import TOTAL, MetricsColumns


def largest_singular_values(matrices: list[torch.Tensor]) -> torch.Tensor:
    """σ_max of each matrix (or of each of a stack of them), float64 on the device: (r,) or (r, points). NaN for a
    matrix that is not finite (a diverged run's), which the eigensolver would refuse with an error.

    σ_max is the square root of the largest eigenvalue of the Gram matrix MᵀM, in the matrix's own precision
    (float32: about 1e-7 relative, as the matrix itself holds it): a symmetric eigensolver takes half an
    SVD's time on the 32 × 32 matrices of E1, where an SVD was 4% of a step.
    """
    values = []
    for matrix in matrices:
        matrix = matrix.detach()
        finite = torch.isfinite(matrix).all(dim=(-2, -1))
        # scaled to entries of at most 1 first: a diverging run's U is finite long after its Gram matrix is not
        scale = torch.where(finite, matrix.abs().amax(dim=(-2, -1)), 1).clamp_min(torch.finfo(matrix.dtype).tiny)
        safe = torch.where(finite[..., None, None], matrix / scale[..., None, None], 0)
        largest = torch.linalg.eigvalsh(safe.mT @ safe)[..., -1].clamp_min(0).sqrt() * scale
        values.append(torch.where(finite, largest, torch.nan).double())
    return torch.stack(values)


def update_ratios(weights: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """(steps, k): ‖θ_s − θ_{s−1}‖ / ‖θ_{s−1}‖ of each of k parameters at every step s, from `weights`
    (steps + 1, Σ sizes), row s all k flattened and joined in order after step s (row 0: before the first).
    inf for a parameter that was all zeros and moved, NaN for one that stayed zero; float64.

    The norms are taken in the parameters' own precision (a ratio is read to a few digits) and over all the
    steps at once, so a step pays only for its copy.
    """
    moved = weights[1:] - weights[:-1]
    parts = zip(torch.split(moved, list(sizes), dim=1), torch.split(weights[:-1], list(sizes), dim=1))
    return torch.stack([torch.linalg.vector_norm(step, dim=1) / torch.linalg.vector_norm(start, dim=1)
                        for step, start in parts], dim=1).double()


def gradient_norms(grads: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm of every gradient tensor, as one device vector (k,); the norm of all of them comes at flush.

    Accumulated in float64 so a norm clipped to c is recorded as c, not c plus float32 rounding.
    """
    return torch.stack(torch._foreach_norm(grads, 2.0, dtype=torch.float64))


@dataclass(frozen=True)
class Divergence:
    """The first non-finite row: its step and epoch, and the parameter whose norm went first ("total" when only
    their total overflowed, "loss" when only the loss went)."""

    step: int
    epoch: int
    parameter: str


@dataclass
class StepRecorder:
    """Keeps each step's values on the device; `flush` writes them and checks them for divergence."""

    log: CsvLog
    parameter_names: list[str]
    # With norms not recorded, only the loss is watched for divergence.
    norms_recorded: bool = True
    # The recurrent matrices whose largest singular value each step records (sigma_max/<parameter>).
    sigma_parameters: list[str] = field(default_factory=list)
    # time_grads.csv, for a run that records ‖∂L/∂h_t‖ (record.time_grads).
    time_log: Optional[CsvLog] = None
    # update_ratio/<parameter> for every parameter (record.update_ratio); the parameters' numbers of elements.
    records_update_ratios: bool = False
    parameter_sizes: list[int] = field(default_factory=list)
    # The first and last layer whose pre-clip norms' ratio is metrics.csv's depth_ratio (record.depth_ratio).
    depth_layers: list[str] = field(default_factory=list)
    # cell_grads.csv, for an LSTM's ‖∂L/∂c_t‖ beside time_grads.csv's ‖∂L/∂h_t‖.
    cell_log: Optional[CsvLog] = None
    _time_rows: list[tuple[int, torch.Tensor, Optional[torch.Tensor]]] = field(default_factory=list)
    _host_columns: list[tuple[int, int, float]] = field(default_factory=list)
    _device_columns: tuple[list[torch.Tensor], ...] = field(default_factory=lambda: ([], [], [], [], []))
    # With update ratios: the weights before the first pending step, then after each pending step (flattened and
    # joined, as update_ratios takes them).
    _weights: list[torch.Tensor] = field(default_factory=list)
    _recurrent: list[Sequence[torch.Tensor]] = field(default_factory=list)
    _blocks: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.columns = MetricsColumns.of(self.parameter_names, self.sigma_parameters, self.records_update_ratios,
                                         self.depth_layers)

    def record(self, step: int, epoch: int, lr: float, loss: torch.Tensor, before: torch.Tensor,
               after: torch.Tensor, threshold: torch.Tensor, clipped: torch.Tensor,
               recurrent: Sequence[torch.Tensor], time_gradients: Optional[torch.Tensor] = None,
               weights: Optional[torch.Tensor] = None, cell_gradients: Optional[torch.Tensor] = None) -> None:
        """`before` and `after`: the k per-parameter norms (gradient_norms) around the clip; `recurrent`: a copy
        of each of the r sigma_parameters as the step's forward used them (their σ_max is computed at flush,
        all the steps' at once); `time_gradients`: ‖∂L/∂h_t‖ for t = 1..T, at the steps that record them (and
        `cell_gradients`, an LSTM's ‖∂L/∂c_t‖);
        `weights`: with update ratios, the parameters after the step, flattened and joined (its update ratios are
        computed at flush against the weights before it: the previous step's, or start_weights')."""
        self._host_columns.append((step, epoch, lr))
        for column, value in zip(self._device_columns, (loss.detach(), before, after, threshold, clipped)):
            column.append(value)
        if self.records_update_ratios:
            self._weights.append(weights)
        self._recurrent.append(recurrent)
        if time_gradients is not None:
            self._time_rows.append((step, time_gradients, cell_gradients))

    def start_weights(self, weights: torch.Tensor) -> None:
        """The weights before the next step (as `record` takes them), as a session begins: the first pending step's update
        ratios are taken against them."""
        if self.records_update_ratios:
            self._weights = [weights]

    @property
    def pending(self) -> int:
        return len(self._host_columns)

    def flush(self) -> Optional[Divergence]:
        """Write the buffered rows (one device-to-host copy); stop at the first non-finite one."""
        if not self._host_columns:
            return None
        losses, before, after, thresholds, clipped = (torch.stack(column) for column in self._device_columns)
        updates = (update_ratios(torch.stack(self._weights), self.parameter_sizes) if self.records_update_ratios
                   else losses.new_empty(len(losses), 0, dtype=torch.float64))
        # (steps, r): each recurrent matrix's σ_max at every pending step, one batched SVD per matrix
        sigma = (largest_singular_values([torch.stack(matrices) for matrices in zip(*self._recurrent)]).t()
                 if self.sigma_parameters else losses.new_empty(len(losses), 0))
        # the block's layout: MetricsColumns
        block = torch.cat([
            losses.double()[:, None],
            before, torch.linalg.vector_norm(before, dim=1, keepdim=True),
            after, torch.linalg.vector_norm(after, dim=1, keepdim=True),
            thresholds.double()[:, None], clipped.double()[:, None], sigma.double(), updates,
            self._depth_ratios(before),
        ], dim=1).cpu().numpy()
        host = self._host_columns
        self._host_columns = []
        for column in self._device_columns:
            column.clear()
        self._recurrent.clear()
        self._weights = self._weights[-1:]
        divergence = None
        first = self._first_non_finite_row(block)
        if first is not None:
            divergence = Divergence(step=host[first][0], epoch=host[first][1], parameter=self._culprit(block[first]))
            block, host = block[: first + 1], host[: first + 1]
        self._blocks.append(block)
        self.log.write_rows([self.columns.row(step, epoch, lr, values)
                             for (step, epoch, lr), values in zip(host, block.tolist())])
        self.log.flush()
        self._flush_time_rows(last_step=host[-1][0])
        return divergence

    def _depth_ratios(self, before: torch.Tensor) -> torch.Tensor:
        """(steps, 1): the first layer's norm over the last's, from the pre-clip norms; (steps, 0) without."""
        if not self.depth_layers:
            return before.new_empty(len(before), 0)
        first, last = (self.parameter_names.index(name) for name in self.depth_layers)
        return (before[:, first] / before[:, last])[:, None]

    def sync(self) -> None:
        """Have the disk hold every row written (CsvLog.sync), of metrics.csv and time_grads.csv."""
        for log in self._logs():
            log.sync()

    def close(self) -> None:
        for log in self._logs():
            log.close()

    def log_sizes(self) -> dict[str, int]:
        """Where each of its logs ends, by file name (a resume point's log_sizes)."""
        return {log.path.name: log.size for log in self._logs()}

    def _logs(self) -> list[CsvLog]:
        return [log for log in (self.log, self.time_log, self.cell_log) if log is not None]

    def _flush_time_rows(self, last_step: int) -> None:
        """time_grads.csv's (and cell_grads.csv's) pending rows up to `last_step` (a diverged run's last), in one
        host copy."""
        rows, self._time_rows = [row for row in self._time_rows if row[0] <= last_step], []
        if self.time_log is None or not rows:
            return
        logs = [self.time_log] + ([self.cell_log] if self.cell_log is not None else [])
        # (steps, logs, T): each step's ‖∂L/∂h_t‖, then its ‖∂L/∂c_t‖
        values = torch.stack([torch.stack(norms[:len(logs)]) for _, *norms in rows]).double().cpu().tolist()
        for index, log in enumerate(logs):
            log.write_rows([[step, *row[index]] for (step, *_), row in zip(rows, values)])
            log.flush()

    def _culprit(self, row: np.ndarray) -> str:
        """What went non-finite first in a diverging row: the first parameter whose norm did, else the total of
        finite norms (it overflowed), else the loss. Unrecorded norms are NaN placeholders and blame nothing."""
        if self.norms_recorded:
            before = row[self.columns.block_before]
            bad = np.flatnonzero(~np.isfinite(before))
            if len(bad):
                return ([*self.parameter_names, TOTAL])[bad[0]]
        return "loss"

    def _first_non_finite_row(self, block: np.ndarray) -> Optional[int]:
        """The first row whose loss or (when recorded) pre-clip norms are not all finite."""
        watched = [block[:, [self.columns.block_loss]]]
        if self.norms_recorded:
            watched.append(block[:, self.columns.block_before])
        bad_rows = np.flatnonzero(~np.isfinite(np.hstack(watched)).all(axis=1))
        return int(bad_rows[0]) if len(bad_rows) else None

    def load_history(self) -> None:
        """Take back the rows earlier sessions of this run wrote, so the statistics cover the whole run.

        Floats are written in round-trip form, so nothing is lost.
        """
        with self.log.path.open(encoding="utf-8", newline="") as file:
            rows = list(csv.reader(file))[1:]
        if not rows:
            return
        try:
            block = np.array([self.columns.block_row(row) for row in rows])
        except ValueError:
            raise DataError(str(self.log.path), "holds values that are not numbers; it was changed after the run") \
                from None
        self._blocks.append(block)

    def statistics(self) -> dict[str, Any]:
        """Per-parameter maxima and medians of the pre-clip norms, and how often clipping acted."""
        names = self.parameter_names + [TOTAL]
        if not self._blocks:
            return {"max_grad_norm": {}, "median_grad_norm": {}, "max_clipped_norm": {}, "clip_fraction": None,
                    "median_depth_ratio": None, "final_loss": None}
        block = np.concatenate(self._blocks)
        before, after = block[:, self.columns.block_before], block[:, self.columns.block_after]

        def finite_stat(values: np.ndarray, reduce) -> float | None:
            finite = values[np.isfinite(values)]
            return float(reduce(finite)) if len(finite) else None

        depth = block[:, self.columns.block_depth]
        return {
            "max_grad_norm": {n: finite_stat(before[:, i], np.max) for i, n in enumerate(names)},
            "median_grad_norm": {n: finite_stat(before[:, i], np.median) for i, n in enumerate(names)},
            "max_clipped_norm": {n: finite_stat(after[:, i], np.max) for i, n in enumerate(names)},
            "clip_fraction": float(block[:, self.columns.block_clipped].mean()),
            "median_depth_ratio": finite_stat(depth.ravel(), np.median) if depth.size else None,
            "final_loss": float(block[-1, self.columns.block_loss]),
        }
