"""The vectorized backend: the points of a sweep that share a model's shapes train together as one batched model.

Each point is built exactly as `gradexp run` builds it (`build_experiment`: its own data, seeded
initial weights, optimizer, clip mode, schedule) and opened as `gradexp run` opens it
(`runner.open_run`): its own `runner.Training` owns everything a run records (the shuffle generator,
metrics.csv, dev evaluations and checkpoints, resume points, divergence and early stopping, plots
and summary.json). This module is a second driver of Training's public step API, beside the runner's
own loop; only the forward and backward passes, and the arithmetic that can be, are shared. Each step:

    stack the active points' parameters and buffers           S_k = [theta_k^(1); ...; theta_k^(P)]
    loss^(p) = L(f(x^(p); theta^(p)), y^(p)) for all p at once  (torch.func.vmap over functional_call)
    backward of sum_p loss^(p)                                 (d/d theta^(p) of the sum is grad loss^(p))
    copy each point's slice of the gradients (and of updated batch-norm buffers) back to the point

and then every point goes on exactly as the runner's loop does: its gradient norms (one
`torch._foreach_norm` over all points' gradients), its clipper and its optimizer step (per-tensor
norm clipping and plain SGD for all points in one call, with the arithmetic of each point's own call,
so the same bits), then Training.complete_step (its row, and its flush / evaluation / resume point on
its own schedule). A point that diverges, stops early or is interrupted leaves the batch at once and
is finished (test evaluation, plots, summary) as the runner finishes it; the others go on. The plots
of points that end together (most often all of them, at the last step) are drawn in parallel
processes, one per core. Their summary `seconds` is the batch's wall time up to the point's end.

What may differ between the points of one batch: optimizer, learning rate, clip mode and threshold,
schedule, seed (so the data and the initial weights), eval/flush cadence, patience. What must agree:
the model, the loss, the data's shapes, batch size, epochs, dtype and device. A model must draw no
random numbers while training (no dropout): the points share one process's random state.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.func import functional_call, vmap

from gradexp.clipping.base import ClipOutcome, GradientClipper, constant
from gradexp.clipping.fixed import PerTensorNormClip, clip_tensor_norms
from gradexp.config.schema import ExperimentConfig
from gradexp.drawing import plot_runs
from gradexp.experiment import DatasetCache, Experiment, build_experiment
from gradexp.interrupts import StopRequests
from gradexp.recording.steps import gradient_norms
from gradexp.runner import Training, open_run
from gradexp.schedules import ConstantRate
from gradexp.sweep.grid import SweepPoint
from gradexp.sweep.outcomes import FAILED, PointOutcome, failure_text, train_point
from gradexp.threads import torch_threads, usable_cores


@dataclass(frozen=True)
class VectorizedBackend:
    """Points with equal batch_key train as one batch; a point alone in its batch trains as `gradexp run` does."""

    @property
    def settings(self) -> dict[str, Any]:
        return {"backend": "vectorized"}

    def __call__(self, points: Sequence[tuple[SweepPoint, ExperimentConfig]], sweep_dir: Path,
                 finished: Callable[[PointOutcome], None]) -> list[PointOutcome]:
        outcomes: list[PointOutcome] = []

        def report(outcome: PointOutcome) -> None:
            outcomes.append(outcome)
            finished(outcome)

        groups: dict[tuple, list[tuple[SweepPoint, Experiment]]] = {}
        # Every point is built before any trains: the points that share their data share one copy of it.
        datasets = DatasetCache(capacity=len(points))
        for point, config in points:
            try:
                experiment = build_experiment(config, datasets)
            except Exception as failure:  # noqa: BLE001  (a point its builders reject fails alone)
                report(PointOutcome(point, FAILED, error=failure_text(failure)))
                continue
            groups.setdefault(batch_key(experiment), []).append((point, experiment))
        for group in groups.values():
            if len(group) == 1:
                point, experiment = group[0]
                report(PointOutcome(point, *train_point(experiment.config, sweep_dir, experiment)))
            else:
                train_batch(group, sweep_dir, report)
        return sorted(outcomes, key=lambda outcome: outcome.point.index)


def batch_key(experiment: Experiment) -> tuple:
    """Points with equal keys can share a batched forward pass: same computation, same shapes."""
    config = experiment.config
    dataset = experiment.dataset
    splits = [split for split in (dataset.train, dataset.dev, dataset.test) if split is not None]
    return (
        repr(config.to_dict()["model"]), repr(config.to_dict()["loss"]),
        config.train.batch_size, config.train.epochs, config.train.dtype, config.train.device, config.train.threads,
        tuple((name, tuple(p.shape)) for name, p in experiment.model.named_parameters()),
        tuple((name, tuple(b.shape), b.dtype) for name, b in experiment.model.named_buffers()),
        tuple((len(split), tuple(split.inputs.shape[1:]), split.inputs.dtype) for split in splits),
        dataset.resample_train is not None,
        # A model that gives ∂L/∂h_t only outside vmap (the loop backend) trains alone when it records them.
        id(experiment) if experiment.time_gradients is not None and not experiment.time_gradients.batched else None,
    )


def train_batch(group: Sequence[tuple[SweepPoint, Experiment]], sweep_dir: Path,
                report: Callable[[PointOutcome], None]) -> None:
    """Train the group as one Batch, reporting each point as it ends; a crash fails the points not yet ended.

    The batch yields its outcomes, so a failure of `report` (the caller's) is never taken for the batch's.
    """
    stop_requests = StopRequests()
    batch = Batch([Member(point, open_run(experiment, sweep_dir, stop_requests=stop_requests))
                   for point, experiment in group], stop_requests)
    trained = batch.train()
    while True:
        try:
            outcome = next(trained, None)
        except Exception as failure:  # noqa: BLE001  (a batch that crashes fails its unfinished points only)
            for member in batch.active():
                member.training.abandon()
                report(PointOutcome(member.point, FAILED, member.training.run_dir, failure_text(failure)))
            return
        if outcome is None:
            return
        report(outcome)


class Member:
    """One point of a batch: its run (a runner.Training) and the tensors the batch reads and fills."""

    def __init__(self, point: SweepPoint, training: Training) -> None:
        self.point = point
        self.training = training
        self.parameters = training.parameters
        self.grads = training.gradients()
        self.buffers = [buffer for _, buffer in training.experiment.model.named_buffers()]
        # Plain SGD at a constant rate: updated with the others of its rate in one call (sgd_steps_together).
        # A torch LR scheduler must see the optimizer's own step called, so other schedules step alone.
        self.steps_together = (is_plain_sgd(training.experiment.optimizer)
                               and isinstance(training.experiment.schedule, ConstantRate))
        self.finished = False

    @property
    def experiment(self) -> Experiment:
        return self.training.experiment


class Batch:
    """Points with one batch_key, trained in lockstep; finished points drop out."""

    def __init__(self, members: list[Member], stop_requests: StopRequests) -> None:
        self.members = members
        self.stop_requests = stop_requests
        first = members[0].experiment
        self.template = copy.deepcopy(first.model).train()
        self.parameter_names = [name for name, _ in self.template.named_parameters()]
        self.buffer_names = [name for name, _ in self.template.named_buffers()]
        train_loss = first.train_loss

        def point_loss(parameters: dict, buffers: dict, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return train_loss(functional_call(self.template, (parameters, buffers), (inputs,)), targets)

        self.batched_loss = vmap(point_loss, randomness="error")
        # The template's backward leaves every point's ‖∂L/∂h_t‖ here, (T, points), when a point records them.
        records_time = any(member.experiment.time_gradients is not None for member in members)
        self.time_gradients = self.template.record_time_gradients() if records_time else None

    def train(self) -> Iterator[PointOutcome]:
        """Train the batch, yielding each point's outcome once its run folder is complete."""
        keep_freed_memory()
        with self.stop_requests, torch_threads(self.members[0].experiment.config.train.threads):
            for member in self.members:
                member.training.begin()
            while self.active():
                active = self.active()
                for step_batches in zip(*(member.training.epoch_batches() for member in active)):
                    stepping = [(m, b) for m, b in zip(active, step_batches) if not m.finished]
                    if not stepping:
                        break
                    yield from self.step([m for m, _ in stepping], [b for _, b in stepping])
                # Every point has as many epochs: they end their last one together.
                if not all([member.training.end_epoch() for member in self.active()]):
                    break
            yield from self.finish(self.active())

    def active(self) -> list[Member]:
        return [member for member in self.members if not member.finished]

    def step(self, members: list[Member], step_batches: list) -> list[PointOutcome]:
        """One optimizer step of every point in `members` (their data `step_batches`), then each one's bookkeeping.

        Returns the outcomes of the points that ended with this step."""
        stacked = {name: torch.stack([m.parameters[i].detach() for m in members]).requires_grad_()
                   for i, name in enumerate(self.parameter_names)}
        due = [member.training.time_gradients_due() for member in members]
        if self.time_gradients is not None:
            self.time_gradients.enabled = any(due)
        buffers = {name: torch.stack([m.buffers[i] for m in members]) for i, name in enumerate(self.buffer_names)}
        losses = self.batched_loss(stacked, buffers, torch.stack([b.inputs for b in step_batches]),
                                   torch.stack([b.targets for b in step_batches]))
        batched_grads = torch.autograd.grad(losses.sum(), list(stacked.values()))
        with torch.no_grad():
            torch._foreach_copy_([g for m in members for g in m.grads],
                                 [g[i] for i in range(len(members)) for g in batched_grads])
            if buffers:
                torch._foreach_copy_([b for m in members for b in m.buffers],
                                     [b[i] for i in range(len(members)) for b in buffers.values()])
        before = self.norms(members)
        clips = clip_points([m.experiment.clipper for m in members], [m.grads for m in members],
                            [m.parameters for m in members])
        after = self.norms(members)
        recurrent = self.recurrent_matrices(members, stacked)
        through_time = self.time_gradients.norms if any(due) else None
        through_cells = self.time_gradients.cell_norms if any(due) and self.time_gradients.cells else None
        sgd_steps_together([m.experiment.optimizer for m in members if m.steps_together])
        ended = []
        for index, member in enumerate(members):
            optimizer = member.experiment.optimizer
            lr = optimizer.param_groups[0]["lr"]
            if not member.steps_together:
                optimizer.step()
            if member.training.complete_step(losses[index], before[index], after[index], clips[index], lr,
                                             recurrent[index], through_time[:, index] if due[index] else None,
                                             member.training.weights(),
                                             through_cells[:, index] if through_cells is not None and due[index]
                                             else None):
                ended.append(member)
        return self.finish(ended)

    def norms(self, members: list[Member]) -> torch.Tensor:
        """(points, k): every gradient's L2 norm per point, as runner.gradient_norms gives them."""
        norms = gradient_norms([g for m in members for g in m.grads]).reshape(len(members), len(self.parameter_names))
        recorded = [m.experiment.config.record.norms for m in members]
        if all(recorded):  # the usual case: no mask to build (and, on a GPU, to copy there) each step
            return norms
        return torch.where(torch.tensor(recorded, device=norms.device)[:, None], norms, math.nan)

    @staticmethod
    def recurrent_matrices(members: list[Member], stacked: dict[str, torch.Tensor]) -> list[list[torch.Tensor]]:
        """Each point's Training.recurrent_matrices, sliced from the stacked parameters (copies already: the
        stacks are made anew each step, before the update)."""
        return [[stacked[name][index].detach() for name in member.experiment.sigma_parameters]
                for index, member in enumerate(members)]

    def finish(self, members: list[Member]) -> list[PointOutcome]:
        """Training.finish for points that end together, their plots drawn on every core at once."""
        conclusions = [member.training.conclude() for member in members]
        drawing_seconds = plot_runs([member.training.plot_arguments() for member in members], usable_cores())
        outcomes = []
        for member, (status, test) in zip(members, conclusions):
            member.training.write_summary(status, test, drawing_seconds)
            member.finished = True
            outcomes.append(PointOutcome(member.point, status, member.training.run_dir))
        return outcomes


def clip_points(clippers: Sequence[GradientClipper], grads_per_point: Sequence[list[torch.Tensor]],
                params_per_point: Sequence[list[torch.Tensor]]) -> list[ClipOutcome]:
    """Every point's clipper on its own gradients.

    Per-tensor norm clippers of one norm type clip together, in one norm call and one multiply for all
    their tensors (clip_tensor_norms, the arithmetic of each one's own `clip`, so the same bits); the
    others clip one by one.
    """
    outcomes: list[ClipOutcome | None] = [None] * len(clippers)
    together: dict[float, list[int]] = {}
    for index, clipper in enumerate(clippers):
        if type(clipper) is PerTensorNormClip:
            together.setdefault(clipper.norm_type, []).append(index)
        else:
            outcomes[index] = clipper.clip(grads_per_point[index], params_per_point[index])
    for norm_type, indices in together.items():
        grads = [grad for index in indices for grad in grads_per_point[index]]
        thresholds = [constant(clippers[index].threshold, grads[0]) for index in indices]
        clipped = clip_tensor_norms(grads, torch.stack(thresholds)[:, None], norm_type)
        for index, threshold, point_clipped in zip(indices, thresholds, clipped.unbind(0)):
            outcomes[index] = ClipOutcome(threshold=threshold, clipped=point_clipped)
    return outcomes


def is_plain_sgd(optimizer: torch.optim.Optimizer) -> bool:
    """SGD whose step is p <- p - lr g and nothing more: no momentum or weight decay, so no state either."""
    if type(optimizer) is not torch.optim.SGD or len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    return (group["momentum"] == 0 and group["weight_decay"] == 0 and not group["maximize"]
            and not group["differentiable"] and not group["fused"] and not isinstance(group["lr"], torch.Tensor))


@torch.no_grad()
def sgd_steps_together(optimizers: Sequence[torch.optim.Optimizer]) -> None:
    """step() of many plain SGD optimizers (is_plain_sgd) in one update per learning rate.

    p.add_(g, alpha=-lr), as SGD's own step computes it, so the parameters get the same bits; the
    optimizers' own Python (about as long as the update at a small model's sizes) runs not at all.
    """
    by_rate: dict[float, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
    for optimizer in optimizers:
        group = optimizer.param_groups[0]
        parameters, grads = by_rate.setdefault(group["lr"], ([], []))
        for parameter in group["params"]:
            if parameter.grad is not None:
                parameters.append(parameter)
                grads.append(parameter.grad)
    for rate, (parameters, grads) in by_rate.items():
        torch._foreach_add_(parameters, grads, alpha=-rate)


# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap and are reused (a 64-point E1 step's largest block is 10 MiB).
KEPT_BLOCK_BYTES = 32 * 1024 * 1024
# Free memory at the top of the heap is returned to the system only beyond this much.
KEPT_FREE_BYTES = 1024 * 1024 * 1024


@functools.cache
def keep_freed_memory() -> bool:
    """Keep freed memory in the process for the next allocation of its size, instead of returning it to the
    system; True when glibc took the setting (once per process).

    A batch's step allocates and frees blocks of megabytes (every point's states and deltas). glibc hands
    blocks that large back to the system when they are freed, so the next step touches fresh pages, and
    each first touch of a 4 KiB page is a page fault (microseconds in a virtual machine): measured, a
    64-point SRN step took 33 ms that way and 23 ms with the memory kept (benchmarks/README.md). Raising
    glibc's mmap and trim thresholds keeps it. Process-wide; without glibc (macOS, Windows, musl) nothing
    changes.
    """
    library = ctypes.util.find_library("c")
    if library is None:
        return False
    try:
        mallopt = ctypes.CDLL(library).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEPT_BLOCK_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES))
