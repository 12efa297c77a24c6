"""The names of a run folder's files and the columns of its CSV files, defined once.

metrics.csv, one row per step:

    step, epoch, loss, lr,
    grad_norm/<parameter>... , grad_norm/total        L2 norm of each gradient before clipping, and of all
    clipped_norm/<parameter>..., clipped_norm/total   the same after clipping
    clip_threshold, clipped                           the threshold applied (empty when none), 1 when the
                                                      clip changed a gradient
    sigma_max/<parameter>...                          the largest singular value of each recurrent matrix
                                                      as the step's forward used it (record.sigma_max)
    update_ratio/<parameter>...                       ‖Δθ‖/‖θ‖ of each parameter: the step's update against
                                                      the weights before it (record.update_ratio)
    depth_ratio                                       a feed-forward stack's first layer's pre-clip weight
                                                      gradient norm over its last layer's (record.depth_ratio)

eval.csv, one row per evaluation: step, epoch, split (dev or test), loss, <the task's metric>.

time_grads.csv (a recurrent model's run), one row per recorded step: step, t1 ... tT, the norm of the loss's
gradient with respect to the hidden state at each position of the sequence.

A parameter is shown to a reader by short_parameter_name (W for rnn_model.W), in figures, tables and the
text a run prints alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

CONFIG = "config.yaml"
METRICS = "metrics.csv"
EVALUATIONS = "eval.csv"
SUMMARY = "summary.json"
GRAD_NORMS_PLOT = "grad_norms.pdf"
LOSS_PLOT = "loss.pdf"
TIME_GRADS = "time_grads.csv"
TIME_GRADS_PLOT = "time_grads.pdf"
# ‖∂L/∂c_t‖ of an LSTM's cell state, as time_grads.csv holds ‖∂L/∂h_t‖ (the same columns)
CELL_GRADS = "cell_grads.csv"
CELL_GRADS_PLOT = "cell_grads.pdf"
GRAD_FLOW_PLOT = "grad_flow.pdf"
# The states whose gradients through time a run may record (h, an LSTM's c too): the CSV each is in, its figure.
TIME_GRADIENT_FILES = {"h": TIME_GRADS, "c": CELL_GRADS}
TIME_GRADIENT_PLOTS = {"h": TIME_GRADS_PLOT, "c": CELL_GRADS_PLOT}
BEST_CHECKPOINT = "best.pt"
RESUME_POINT = "last.pt"
# What `gradexp sweep` writes beside its run folders: how it was called. A folder holding it is a sweep.
SWEEP_RECORD = "sweep.yaml"
# Every file a run writes; a command that writes beside a run's files never takes one of these names.
RUN_FILES = (CONFIG, METRICS, EVALUATIONS, SUMMARY, GRAD_NORMS_PLOT, LOSS_PLOT, BEST_CHECKPOINT, RESUME_POINT,
             TIME_GRADS, TIME_GRADS_PLOT, CELL_GRADS, CELL_GRADS_PLOT, GRAD_FLOW_PLOT)

GRAD_PREFIX = "grad_norm/"
CLIPPED_PREFIX = "clipped_norm/"
TOTAL = "total"
STEP, EPOCH, LOSS, LR = "step", "epoch", "loss", "lr"
CLIP_THRESHOLD, CLIPPED = "clip_threshold", "clipped"
SIGMA_PREFIX = "sigma_max/"
UPDATE_PREFIX = "update_ratio/"
DEPTH_RATIO = "depth_ratio"
TIME_PREFIX = "t"
SPLIT = "split"


@dataclass(frozen=True)
class MetricsColumns:
    """metrics.csv's columns for a model's parameters, and where each group sits in a row.

    A row's numeric block (what StepRecorder computes) is the row without step, epoch and lr:
    loss, the norms before clipping (k + total), after clipping (k + total), threshold, clipped, and the
    largest singular value of each of the r `sigma_parameters`, with `update_ratios` every parameter's
    update ratio (k), and with `depth_layers` (first, last) the ratio of their norms before clipping.
    """

    parameters: tuple[str, ...]
    sigma_parameters: tuple[str, ...] = ()
    update_ratios: bool = False
    depth_layers: tuple[str, ...] = ()

    @classmethod
    def of(cls, parameters: Sequence[str], sigma_parameters: Sequence[str] = (), update_ratios: bool = False,
           depth_layers: Sequence[str] = ()) -> "MetricsColumns":
        return cls(tuple(parameters), tuple(sigma_parameters), update_ratios, tuple(depth_layers))

    @property
    def header(self) -> list[str]:
        names = [*self.parameters, TOTAL]
        return ([STEP, EPOCH, LOSS, LR] + [GRAD_PREFIX + name for name in names]
                + [CLIPPED_PREFIX + name for name in names] + [CLIP_THRESHOLD, CLIPPED]
                + [SIGMA_PREFIX + name for name in self.sigma_parameters]
                + [UPDATE_PREFIX + name for name in self.parameters if self.update_ratios]
                + [DEPTH_RATIO] * bool(self.depth_layers))

    # The numeric block, one row per step: loss | before (k) | before total | after (k) | after total |
    # threshold | clipped | sigma (r) | update ratios (k or 0) | depth ratio (1 or 0). These name its parts;
    # nothing else indexes it.
    @property
    def block_width(self) -> int:
        return self.block_depth.stop

    @property
    def block_loss(self) -> int:
        return 0

    @property
    def block_before(self) -> slice:
        """Every parameter's norm before clipping, then their total."""
        return slice(1, len(self.parameters) + 2)

    @property
    def block_parameters_before(self) -> slice:
        """Every parameter's norm before clipping, without the total."""
        return slice(1, len(self.parameters) + 1)

    @property
    def block_after(self) -> slice:
        """Every parameter's norm after clipping, then their total."""
        k = len(self.parameters)
        return slice(k + 2, 2 * k + 3)

    @property
    def block_threshold(self) -> int:
        return 2 * len(self.parameters) + 3

    @property
    def block_clipped(self) -> int:
        return 2 * len(self.parameters) + 4

    @property
    def block_sigma(self) -> slice:
        start = 2 * len(self.parameters) + 5
        return slice(start, start + len(self.sigma_parameters))

    @property
    def block_updates(self) -> slice:
        start = self.block_sigma.stop
        return slice(start, start + len(self.parameters) * self.update_ratios)

    @property
    def block_depth(self) -> slice:
        return slice(self.block_updates.stop, self.block_updates.stop + bool(self.depth_layers))

    def row(self, step: int, epoch: int, lr: float, block_row: Sequence[float]) -> list:
        """A metrics.csv row from a block row: the threshold empty where there was none (NaN), clipped 0 or 1."""
        threshold, clipped = block_row[self.block_threshold], block_row[self.block_clipped]
        return [step, epoch, block_row[self.block_loss], lr, *block_row[self.block_before],
                *block_row[self.block_after], None if math.isnan(threshold) else threshold, int(clipped),
                *block_row[self.block_sigma], *block_row[self.block_updates], *block_row[self.block_depth]]

    def block_row(self, row: Sequence[str]) -> list[float]:
        """The inverse of `row`, from a metrics.csv row's texts (empty cells are NaN)."""
        numbers = [float(cell) if cell else math.nan for cell in row]
        return [numbers[2], *numbers[4:]]


def time_gradient_columns(length: int) -> list[str]:
    """time_grads.csv's header for sequences of `length`: step, t1 ... tT."""
    return [STEP] + [f"{TIME_PREFIX}{t}" for t in range(1, length + 1)]


def evaluation_columns(metric: str) -> list[str]:
    return [STEP, EPOCH, SPLIT, LOSS, metric]


def parameter_names(columns: Sequence[str]) -> list[str]:
    """The parameters of a metrics.csv header, in file order, without the total."""
    return [column[len(GRAD_PREFIX):] for column in columns
            if column.startswith(GRAD_PREFIX) and column != GRAD_PREFIX + TOTAL]


def short_parameter_name(name: str, names: Sequence[str]) -> str:
    """The last dotted component (W for rnn_model.W) when no other name in `names` shares it, else the full name."""
    last = name.split(".")[-1]
    return last if sum(n.split(".")[-1] == last for n in names) == 1 else name
