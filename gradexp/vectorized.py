"""Vectorized sweeps: the points of a sweep that share a model's shapes train together as one batched model.

Each point is built exactly as `gradexp run` builds it (`build_experiment`: its own data, seeded
initial weights, optimizer, clip mode, schedule) and keeps its own `runner.Training`, which owns
everything a run records: the shuffle generator, metrics.csv through its StepRecorder, dev
evaluations and checkpoints, resume points, divergence and early stopping, plots and summary.json.
Only the forward and backward passes are shared. Each step:

    stack the active points' parameters and buffers           S_k = [theta_k^(1); ...; theta_k^(P)]
    loss^(p) = L(f(x^(p); theta^(p)), y^(p)) for all p at once  (torch.func.vmap over functional_call)
    backward of sum_p loss^(p)                                 (d/d theta^(p) of the sum is grad loss^(p))
    copy each point's slice of the gradients (and of updated batch-norm buffers) back to the point

and then every point goes on exactly as the runner's loop does: its gradient norms (one
`torch._foreach_norm` over all points' gradients), its clipper and its optimizer step (the clip
modes that can, and plain SGD, for all points in one call with the same arithmetic), its
row, and its flush / evaluation / resume point on its own schedule (runner.Training.end_step). A
point that diverges, stops early or is interrupted leaves the batch at once and is finished (test
evaluation, plots, summary) as the runner finishes it; the others go on. The plots of points that
end together (most often all of them, at the last step) are drawn in parallel processes, one per
core. The runs' folders are those `gradexp run` writes; their summary `seconds` is the batch's wall
time up to the point's end.

What may differ between the points of one batch: optimizer, learning rate, clip mode and threshold,
schedule, seed (so the data and the initial weights), eval/flush cadence, patience. What must agree:
the model, the loss, the data's shapes, batch size, epochs, dtype and device. A model must draw no
random numbers while training (no dropout): the points share one process's random state.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch.func import functional_call, vmap

from gradexp.clipping.base import clip_points
from gradexp.config.schema import ExperimentConfig
from gradexp.experiment import Experiment, build_experiment
from gradexp.interrupts import StopRequests
from gradexp.memory import keep_freed_memory
from gradexp.optim import is_plain_sgd, sgd_steps_together
from gradexp.plotting import plot_runs
from gradexp.recording import create_run_folder, write_yaml
from gradexp.runner import SilentReporter, Training, batches, gradient_norms, steps_per_epoch
from gradexp.schedules import ConstantRate
from gradexp.sweep.execution import FAILED, PointOutcome, failure_text, train_point, usable_cores
from gradexp.sweep.grid import SweepPoint
from gradexp.threads import torch_threads


@dataclass
class Member:
    """One point of a batch: its run (a runner.Training) and the tensors the batch reads and fills."""

    point: SweepPoint
    training: Training
    parameters: list[torch.Tensor]
    grads: list[torch.Tensor]
    buffers: list[torch.Tensor]
    # Plain SGD at a constant rate: updated with the others of its rate in one call (optim.sgd_steps_together).
    # A torch LR scheduler must see the optimizer's own step called, so other schedules step alone.
    steps_together: bool
    finished: bool = False

    @property
    def experiment(self) -> Experiment:
        return self.training.experiment


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
    )


@dataclass
class Batch:
    """Points with one batch_key, trained in lockstep; finished points drop out."""

    members: list[Member]

    def __post_init__(self) -> None:
        first = self.members[0].experiment
        self.template = copy.deepcopy(first.model).train()
        self.parameter_names = [name for name, _ in self.template.named_parameters()]
        self.buffer_names = [name for name, _ in self.template.named_buffers()]
        train_loss = first.train_loss

        def point_loss(parameters: dict, buffers: dict, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return train_loss(functional_call(self.template, (parameters, buffers), (inputs,)), targets)

        self.batched_loss = vmap(point_loss, randomness="error")

    def train(self) -> Iterator[PointOutcome]:
        """Train the batch, yielding each point's outcome once its run folder is complete.

        A generator, so the caller reports a point as it ends, and a failure of that report is never taken for
        a failure of the batch's training.
        """
        train_config = self.members[0].experiment.config.train
        total_steps = train_config.epochs * steps_per_epoch(len(self.members[0].training.train_split),
                                                           train_config.batch_size)
        started = time.perf_counter()
        keep_freed_memory()
        with StopRequests() as stop, torch_threads(train_config.threads):
            for member in self.members:
                member.training.started = started
                member.training.reporter.run_started(member.training.run_dir, total_steps)
                member.training._save_resume_point()
            for epoch in range(1, train_config.epochs + 1):
                active = self.active()
                if not active:
                    break
                for member in active:
                    member.training.epoch = epoch
                    member.training.epoch_generator_state = member.training.generator.get_state()
                epoch_batches = [batches(m.training._epoch_split(), train_config.batch_size,
                                         m.experiment.config.train.shuffle, m.training.generator) for m in active]
                for step_batches in zip(*epoch_batches):
                    stepping = [(m, b) for m, b in zip(active, step_batches) if not m.finished]
                    if not stepping:
                        break
                    yield from self.step([m for m, _ in stepping], [b for _, b in stepping], total_steps, stop)
                for member in self.active():
                    member.training.batches_done = 0
                    member.experiment.schedule.epoch_ended()
            yield from self.finish(self.active())

    def active(self) -> list[Member]:
        return [member for member in self.members if not member.finished]

    def step(self, members: list[Member], step_batches: list, total_steps: int, stop: StopRequests
             ) -> list[PointOutcome]:
        """One optimizer step of every point in `members` (their data `step_batches`), then each one's bookkeeping.

        Returns the outcomes of the points that ended with this step."""
        stacked = {name: torch.stack([m.parameters[i].detach() for m in members]).requires_grad_()
                   for i, name in enumerate(self.parameter_names)}
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
        outcomes = clip_points([m.experiment.clipper for m in members], [m.grads for m in members],
                               [m.parameters for m in members])
        after = self.norms(members)
        sgd_steps_together([m.experiment.optimizer for m in members if m.steps_together])
        for index, member in enumerate(members):
            training, optimizer = member.training, member.experiment.optimizer
            training.step += 1
            training.batches_done += 1
            lr = optimizer.param_groups[0]["lr"]
            if not member.steps_together:
                optimizer.step()
            training.recorder.record(training.step, training.epoch, lr, losses[index], before[index], after[index],
                                     outcomes[index].threshold, outcomes[index].clipped)
        return self.finish([member for member in members if member.training.end_step(total_steps, stop.received)])

    def norms(self, members: list[Member]) -> torch.Tensor:
        """(points, k): every gradient's L2 norm per point, as runner.gradient_norms gives them."""
        norms = gradient_norms([g for m in members for g in m.grads]).reshape(len(members), len(self.parameter_names))
        recorded = [m.experiment.config.train.record_norms for m in members]
        if all(recorded):  # the usual case: no mask to build (and, on a GPU, to copy there) each step
            return norms
        return torch.where(torch.tensor(recorded, device=norms.device)[:, None], norms, math.nan)

    def finish(self, members: list[Member]) -> list[PointOutcome]:
        """What runner.Training.train does once its loop returns, for points that end together: last rows,
        test evaluation, plots (drawn on every core at once), summary. Returns their outcomes."""
        conclusions = [member.training.conclude() for member in members]
        plot_runs([member.training.plot_arguments() for member in members], usable_cores())
        outcomes = []
        for member, (status, test) in zip(members, conclusions):
            member.training.write_summary(status, test)
            member.finished = True
            outcomes.append(PointOutcome(member.point, status, member.training.run_dir))
        return outcomes


def prepare_member(point: SweepPoint, experiment: Experiment, sweep_dir: Path) -> Member:
    """The point's run folder and Training, as runner.run makes them, and the tensors the batch fills."""
    run_dir = create_run_folder(sweep_dir, experiment.config.name)
    write_yaml(run_dir / "config.yaml", experiment.config.to_dict())
    training = Training(experiment, run_dir, SilentReporter())
    parameters = experiment.parameters
    for parameter in parameters:
        parameter.grad = torch.zeros_like(parameter)
    experiment.model.train()
    return Member(point, training, parameters, [p.grad for p in parameters],
                  [buffer for _, buffer in experiment.model.named_buffers()],
                  steps_together=is_plain_sgd(experiment.optimizer) and isinstance(experiment.schedule, ConstantRate))


def run_points_vectorized(points: Sequence[tuple[SweepPoint, ExperimentConfig]], sweep_dir: Path,
                          finished: Callable[[PointOutcome], None]) -> list[PointOutcome]:
    """Train the points in batches of equal batch_key; a point alone in its batch trains through runner.run."""
    outcomes: list[PointOutcome] = []

    def report(outcome: PointOutcome) -> None:
        outcomes.append(outcome)
        finished(outcome)

    groups: dict[tuple, list[tuple[SweepPoint, Experiment]]] = {}
    for point, config in points:
        try:
            experiment = build_experiment(config)
        except Exception as failure:  # noqa: BLE001  (a point its builders reject fails alone)
            report(PointOutcome(point, FAILED, error=failure_text(failure)))
            continue
        groups.setdefault(batch_key(experiment), []).append((point, experiment))
    for group in groups.values():
        if len(group) == 1:
            point, experiment = group[0]
            report(PointOutcome(point, *train_point(experiment.config, sweep_dir)))
            continue
        batch = Batch([prepare_member(point, experiment, sweep_dir) for point, experiment in group])
        trained = batch.train()
        while True:
            try:
                outcome = next(trained, None)
            except Exception as failure:  # noqa: BLE001  (a batch that crashes fails its unfinished points only)
                fail_unfinished(batch, failure, report)
                break
            if outcome is None:
                break
            report(outcome)
    return sorted(outcomes, key=lambda outcome: outcome.point.index)


def fail_unfinished(batch: Batch, failure: Exception, report: Callable[[PointOutcome], None]) -> None:
    """Close the logs of the points a crashed batch had not finished, and report them failed."""
    for member in batch.active():
        member.training.recorder.log.close()
        member.training.eval_log.close()
        report(PointOutcome(member.point, FAILED, member.training.run_dir, failure_text(failure)))
