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
    """σ_max of each matrix (or of each of a stack of them), float64 on the device: (r,) or (r, points). Exact
    (torch.linalg.matrix_norm, ord 2: the SVD's largest value); NaN for a matrix that is not finite (a diverged
    run's), which the SVD would refuse with an error."""
    values = []
    for matrix in matrices:
        matrix = matrix.detach()
        finite = torch.isfinite(matrix).all(dim=(-2, -1))
        safe = torch.where(finite[..., None, None], matrix, torch.zeros_like(matrix))
        values.append(torch.where(finite, torch.linalg.matrix_norm(safe, ord=2), torch.nan))
    return torch.stack(values).double()


def update_ratios(before: list[torch.Tensor], after: list[torch.Tensor]) -> torch.Tensor:
    """‖after − before‖ / ‖before‖ of every parameter, one device vector (k,) in float64 (inf for a parameter
    that was all zeros and moved, NaN for one that stayed zero).

    The norms are taken in the parameters' own precision (a ratio is read to a few digits; float64
    accumulation took twice as long) and in one call for both sets: on a small model each call's overhead
    is most of its cost.
    """
    moved = torch._foreach_sub([tensor.detach() for tensor in after], before)
    norms = torch.stack(torch._foreach_norm([*moved, *before], 2.0)).double()
    return norms[:len(moved)] / norms[len(moved):]


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
    # update_ratio/<parameter> for every parameter (record.update_ratio).
    records_update_ratios: bool = False
    # The first and last layer whose pre-clip norms' ratio is metrics.csv's depth_ratio (record.depth_ratio).
    depth_layers: list[str] = field(default_factory=list)
    _time_rows: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    _host_columns: list[tuple[int, int, float]] = field(default_factory=list)
    _device_columns: tuple[list[torch.Tensor], ...] = field(default_factory=lambda: ([], [], [], [], [], []))
    _recurrent: list[Sequence[torch.Tensor]] = field(default_factory=list)
    _blocks: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.columns = MetricsColumns.of(self.parameter_names, self.sigma_parameters, self.records_update_ratios,
                                         self.depth_layers)

    def record(self, step: int, epoch: int, lr: float, loss: torch.Tensor, before: torch.Tensor,
               after: torch.Tensor, threshold: torch.Tensor, clipped: torch.Tensor,
               recurrent: Sequence[torch.Tensor], time_gradients: Optional[torch.Tensor] = None,
               updates: Optional[torch.Tensor] = None) -> None:
        """`before` and `after`: the k per-parameter norms (gradient_norms) around the clip; `recurrent`: a copy
        of each of the r sigma_parameters as the step's forward used them (their σ_max is computed at flush,
        all the steps' at once); `time_gradients`: ‖∂L/∂h_t‖ for t = 1..T, at the steps that record them;
        `updates`: the k update_ratios, when recorded."""
        self._host_columns.append((step, epoch, lr))
        updates = updates if updates is not None else before.new_empty(0)
        for column, value in zip(self._device_columns, (loss.detach(), before, after, threshold, clipped, updates)):
            column.append(value)
        self._recurrent.append(recurrent)
        if time_gradients is not None:
            self._time_rows.append((step, time_gradients))

    @property
    def pending(self) -> int:
        return len(self._host_columns)

    def flush(self) -> Optional[Divergence]:
        """Write the buffered rows (one device-to-host copy); stop at the first non-finite one."""
        if not self._host_columns:
            return None
        losses, before, after, thresholds, clipped, updates = (torch.stack(column) for column in self._device_columns)
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
        return [self.log] + ([self.time_log] if self.time_log is not None else [])

    def _flush_time_rows(self, last_step: int) -> None:
        """time_grads.csv's pending rows up to `last_step` (a diverged run's last), in one host copy."""
        rows, self._time_rows = [(step, norms) for step, norms in self._time_rows if step <= last_step], []
        if self.time_log is None or not rows:
            return
        values = torch.stack([norms for _, norms in rows]).double().cpu().tolist()
        self.time_log.write_rows([[step, *row] for (step, _), row in zip(rows, values)])
        self.time_log.flush()

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
