"""The one training loop every model shares.

Each step reads like the articles' loops: forward, loss, backward, record the gradient norms,
clip, record them again, update. Norms stay on the device and reach the host once per
`train.flush_every` steps (and before every evaluation), which is also where divergence is
detected: a non-finite loss or gradient ends the run as a result (`status: diverged`), not a crash.

Interrupts and resume: SIGINT/SIGTERM are answered at the end of the current step (rows flushed,
resume point saved, plots and a summary with `status: interrupted` written), and `resume` continues
such a run, or a crashed one, from its last resume point (last.pt, see gradexp.resume); on CPU the
finished metrics.csv is byte-identical to an uninterrupted run's. A resume point is saved at the
first flush at least `train.resume_point_seconds` (10 s) after the previous one (or the start; a run
killed before its first one trains again from the start in its folder when resumed): the logs are
fsynced, best.pt is written if the best model changed, then one torch.save of the model, the
optimizer, schedule and clipper states and the best weights goes to a temporary file, fsynced and
renamed. That costs 5 to 10 ms on a busy 2-core CPU, which once every few steps would be a large
share of a 1 ms step: hence a clock, not a step count.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Protocol

import numpy as np
import torch

import gradexp
from gradexp.clipping.base import ClipOutcome
from gradexp.config.loading import config_from_dict
from gradexp.config.schema import ExperimentConfig, PlotConfig
from gradexp.data.base import Split
from gradexp.drawing import FigureWorkers, draw_run
from gradexp.errors import OutputError
from gradexp.evaluation import evaluate
from gradexp.experiment import Experiment, build_experiment
from gradexp.interrupts import StopRequests
from gradexp.recording.checkpoints import save_checkpoint
from gradexp.recording.files import (CsvLog, create_run_folder, json_ready, read_config, remove_unfinished_writes,
                                     run_name, write_yaml)
from gradexp.recording.layout import (BEST_CHECKPOINT, CONFIG, EVALUATIONS, METRICS, RESUME_POINT, SUMMARY,
                                      CELL_GRADS, TIME_GRADS, MetricsColumns, evaluation_columns, time_gradient_columns)
from gradexp.recording.steps import Divergence, StepRecorder, gradient_norms
from gradexp.recording.summary import RunSummary
from gradexp.resume import FORMAT, random_states, read_resume_point, restore_random_states
from gradexp.threads import torch_threads


class Reporter(Protocol):
    """How the runner tells the outside world about progress (the CLI draws a progress bar)."""

    def run_started(self, run_dir: Path, total_steps: int) -> None: ...

    def step_done(self, step: int) -> None: ...

    def evaluated(self, step: int, dev: dict[str, float]) -> None: ...

    def run_finished(self, summary: RunSummary) -> None: ...


class SilentReporter:
    def run_started(self, run_dir: Path, total_steps: int) -> None:
        pass

    def step_done(self, step: int) -> None:
        pass

    def evaluated(self, step: int, dev: dict[str, float]) -> None:
        pass

    def run_finished(self, summary: RunSummary) -> None:
        pass


@dataclass
class RunResult:
    run_dir: Path
    summary: RunSummary


def batches(split: Split, batch_size: int, shuffle: bool, generator: torch.Generator, skip: int = 0
            ) -> Iterator[Split]:
    """Mini-batches in order, or in a fresh random order drawn from `generator` (Keras-style, every epoch).

    The order is drawn in full even when the first `skip` batches are left out (a resumed epoch),
    so the generator ends in the same state either way.
    """
    order = torch.randperm(len(split), generator=generator) if shuffle else torch.arange(len(split))
    order = order.to(split.inputs.device)
    for start in range(skip * batch_size, len(split), batch_size):
        index = order[start:start + batch_size]
        yield Split(split.inputs[index], split.targets[index])


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    return math.ceil(train_size / batch_size)


def environment(device: torch.device) -> dict[str, Any]:
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or
        platform.machine(),
        "versions": {
            "gradexp": gradexp.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
    }


def run(config: ExperimentConfig, out_dir: str | Path, reporter: Reporter | None = None,
        figures: Optional[FigureWorkers] = None) -> RunResult:
    """Train `config` into a new run folder under `out_dir`; returns the folder and its summary.

    Config and data problems raise before the folder is created, so a failed start leaves nothing behind.
    `figures`: where the run's figures are drawn (Training.finish); by default here.
    """
    training = open_run(build_experiment(config), out_dir, reporter)
    return RunResult(training.run_dir, training.train(figures))


def open_run(experiment: Experiment, out_dir: str | Path, reporter: Reporter | None = None,
             stop_requests: Optional[StopRequests] = None) -> Training:
    """A new run folder under `out_dir` with the resolved config in it, and the Training that will fill it.

    Every run starts here: `run` and a vectorized sweep's batch alike. `stop_requests`: the signal
    watcher the run answers (a batch's runs share the batch's); by default its own.
    """
    run_dir = create_run_folder(out_dir, experiment.config.name)
    write_yaml(run_dir / CONFIG, experiment.config.to_dict())
    return Training(experiment, run_dir, reporter or SilentReporter(), stop_requests=stop_requests)


def resume(run_dir: str | Path, reporter: Reporter | None = None, figures: Optional[FigureWorkers] = None
           ) -> RunResult:
    """Continue the interrupted or crashed run in `run_dir` from its last resume point, in the same folder; a
    run killed before its first resume point trains again from the start there, from its config.yaml.

    The config is the one the run started with (stored in the resume point); a folder that cannot
    be resumed raises DataError before anything in it changes.
    """
    run_dir = Path(run_dir)
    point = read_resume_point(run_dir)
    source = str(run_dir / CONFIG)
    if point is None:
        config = config_from_dict(read_config(run_dir / CONFIG), source=source, name=run_name(run_dir))
    else:
        config = config_from_dict(point["config"], source=source, name=point["name"])
    experiment = build_experiment(config)
    remove_unfinished_writes(run_dir)
    training = Training(experiment, run_dir, reporter or SilentReporter(), point, restarted=point is None)
    return RunResult(run_dir, training.train(figures))


class Training:
    """One run of the shared loop; its attributes are the state a step reads and writes.

    A driver trains it through a small public API, which `run_steps` (the runner's own loop) uses:

        begin()                                   once, before the first step
        for batch in epoch_batches(): ...         the current epoch's batches (the rest of it, when resumed)
            forward, backward, norms, clip, norms, optimizer step
            if complete_step(...): break          record the step; True when the run must end here
        end_epoch()                               False after the last epoch
        finish()                                  test evaluation, plots, summary.json

    (`train` is run_steps then finish. A sweep calls finish's three parts, conclude / plot_arguments /
    write_summary, itself, to draw runs' plots elsewhere: in worker processes while the next run trains, or
    many at once).

    Given a resume point, it continues from there: the logs are cut back to the point's sizes and
    appended to, and every piece of state is loaded from it. Without one it starts (or, `restarted`, starts
    again) with new logs.
    """

    def __init__(self, experiment: Experiment, run_dir: Path, reporter: Reporter,
                 resume_point: Optional[dict[str, Any]] = None, stop_requests: Optional[StopRequests] = None,
                 restarted: bool = False) -> None:
        self.experiment = experiment
        self.config = experiment.config
        self.run_dir = run_dir
        self.reporter = reporter
        dataset = experiment.dataset
        self.train_split = dataset.train.to(experiment.device, experiment.dtype)
        self.dev_split = dataset.dev.to(experiment.device, experiment.dtype) if dataset.dev is not None else None
        self.test_split = dataset.test.to(experiment.device, experiment.dtype) if dataset.test is not None else None
        self.generator = torch.Generator().manual_seed(self.config.train.seed)
        self.total_steps = self.config.train.epochs * steps_per_epoch(len(self.train_split),
                                                                      self.config.train.batch_size)
        # The model's parameters, listed once (experiment.parameters walks the module tree: 30 µs a step)
        self.parameters = experiment.parameters
        # Flat views of them: a weights() copy is then one cat (with a reshape of each, five times as long)
        self.flat_parameters = [parameter.detach().view(-1) for parameter in self.parameters]
        columns = MetricsColumns.of(experiment.parameter_names, experiment.sigma_parameters,
                                    self.config.record.update_ratio, experiment.depth_layers)
        metrics_log = self._open_log(METRICS, columns.header, resume_point)
        through_time = time_gradient_columns(self.train_split.inputs.shape[1])
        time_log = (self._open_log(TIME_GRADS, through_time, resume_point)
                    if experiment.time_gradients is not None else None)
        cell_log = (self._open_log(CELL_GRADS, through_time, resume_point)
                    if experiment.time_gradients is not None and experiment.time_gradients.cells else None)
        self.recorder = StepRecorder(metrics_log, experiment.parameter_names, self.config.record.norms,
                                     experiment.sigma_parameters, time_log, self.config.record.update_ratio,
                                     [parameter.numel() for parameter in self.parameters], experiment.depth_layers,
                                     cell_log)
        named = dict(experiment.model.named_parameters())
        self.recurrent_parameters = [named[name] for name in experiment.sigma_parameters]
        self.eval_log = self._open_log(EVALUATIONS, evaluation_columns(experiment.metric.name), resume_point)
        self.step = 0
        # The epoch being trained, how many of its batches are done, and the shuffle generator's state when it
        # began (its data order is drawn from that state, so a resumed epoch draws the same order again).
        self.epoch = 1
        self.batches_done = 0
        self.epoch_generator_state = self.generator.get_state()
        self.best_dev: Optional[dict[str, float]] = None
        self.best_state: Optional[dict[str, torch.Tensor]] = None
        # best.pt is written with resume points and at the end, not at every improvement.
        self.best_saved = True
        self.divergence: Optional[Divergence] = None
        self.evaluations_without_improvement = 0
        self.early_stopped = False
        self.stop_requests = stop_requests or StopRequests()
        self.stopped_by: Optional[str] = None
        self.seconds_before = 0.0
        self.concluded_seconds = 0.0
        # A run trained again from the start (killed before its first resume point) was resumed at step 0.
        self.resumed_at_steps: list[int] = [0] if restarted else []
        self.started = self.resume_point_time = time.perf_counter()
        if resume_point is not None:
            self.load_state_dict(resume_point)
            self.recorder.load_history()
            self.resumed_at_steps.append(self.step)

    def train(self, figures: Optional[FigureWorkers] = None) -> RunSummary:
        """The loop (run_steps), then finish: returns the summary once the run folder is complete."""
        self.run_steps()
        return self.finish(figures)

    def run_steps(self) -> None:
        """The loop itself, as the articles write it.

        It returns after the last step, at the first flush that finds a divergence, at an early stop, or at the
        end of the step in which SIGINT or SIGTERM arrived.
        """
        model, optimizer, clipper = self.experiment.model, self.experiment.optimizer, self.experiment.clipper
        parameters = self.parameters
        measure = gradient_norms if self.config.record.norms else self._unrecorded_norms(len(parameters))
        grads = self.gradients()
        time_gradients = self.experiment.time_gradients
        with self.stop_requests, torch_threads(self.config.train.threads):
            self.begin()
            while True:
                for batch in self.epoch_batches():
                    torch._foreach_zero_(grads)
                    if time_gradients is not None:
                        time_gradients.enabled = self.time_gradients_due()
                    loss = self.experiment.train_loss(model(batch.inputs), batch.targets)
                    loss.backward()
                    before = measure(grads)
                    outcome = clipper.clip(grads, parameters)
                    after = measure(grads)
                    recurrent = self.recurrent_matrices()
                    lr = optimizer.param_groups[0]["lr"]
                    optimizer.step()
                    recorded = time_gradients is not None and time_gradients.enabled
                    if self.complete_step(loss, before, after, outcome, lr, recurrent,
                                          time_gradients.norms if recorded else None, self.weights(),
                                          time_gradients.cell_norms if recorded else None):
                        return
                if not self.end_epoch():
                    return

    def gradients(self) -> list[torch.Tensor]:
        """Every parameter's gradient, made once here (zeros) and put in training mode: a driver zeroes these
        very tensors in place each step, so they stay the gradients and the list stays valid."""
        for parameter in self.parameters:
            parameter.grad = torch.zeros_like(parameter)
        self.experiment.model.train()
        return [parameter.grad for parameter in self.parameters]

    def begin(self) -> None:
        """Before the first step (of this session, for a resumed run): the clocks and the reporter. No resume
        point yet: a run killed before its first one trains again from the start (runner.resume)."""
        self.started = self.resume_point_time = time.perf_counter()
        self.recorder.start_weights(self.weights())
        self.reporter.run_started(self.run_dir, self.total_steps - self.step)

    def epoch_batches(self) -> Iterator[Split]:
        """The current epoch's mini-batches; for a resumed run, those its epoch had left.

        The epoch's order is drawn from the shuffle generator's state as the epoch begins, which a resume
        point keeps, so a resumed epoch draws the same order again.
        """
        self.epoch_generator_state = self.generator.get_state()
        return batches(self._epoch_split(), self.config.train.batch_size, self.config.train.shuffle, self.generator,
                       skip=self.batches_done)

    def time_gradients_due(self) -> bool:
        """Whether the next step records ‖∂L/∂h_t‖: record.time_grads, at steps 1, 1 + time_every, ..."""
        return self.experiment.time_gradients is not None and self.step % self.config.record.time_every == 0

    def weights(self) -> Optional[torch.Tensor]:
        """A copy of the parameters, flattened and joined, when the run records update ratios (after each step:
        complete_step's `weights`; as a session begins: the recorder's start_weights)."""
        if not self.config.record.update_ratio:
            return None
        return torch.cat(self.flat_parameters)

    def recurrent_matrices(self) -> list[torch.Tensor]:
        """Before the optimizer step: a copy of each recurrent matrix whose σ_max the run records, as this step's
        forward used it (complete_step's `recurrent`; a copy is 2 µs, its SVD waits for the flush)."""
        return [parameter.detach().clone() for parameter in self.recurrent_parameters]

    def complete_step(self, loss: torch.Tensor, before: torch.Tensor, after: torch.Tensor, clip: ClipOutcome,
                      lr: float, recurrent: list[torch.Tensor], time_gradients: Optional[torch.Tensor] = None,
                      weights: Optional[torch.Tensor] = None, cell_gradients: Optional[torch.Tensor] = None) -> bool:
        """After the optimizer step: count and record it (`before`/`after`: gradient_norms around the clip;
        `recurrent`: recurrent_matrices before the step; `time_gradients`: ‖∂L/∂h_t‖ when time_gradients_due
        said so, and an LSTM's ‖∂L/∂c_t‖ in `cell_gradients`; `weights`: the weights after the step when update
        ratios are recorded), then flush, evaluate and save a resume point when due.

        True when the run must end here: it diverged, stopped early, or SIGINT or SIGTERM came.
        """
        self.step += 1
        self.batches_done += 1
        self.recorder.record(self.step, self.epoch, lr, loss, before, after, clip.threshold, clip.clipped, recurrent,
                             time_gradients, weights, cell_gradients)
        self.reporter.step_done(self.step)
        return self._end_step()

    def end_epoch(self) -> bool:
        """After an epoch's last batch: the schedule hears of it; False when it was the last epoch."""
        self.batches_done = 0
        self.experiment.schedule.epoch_ended()
        if self.epoch == self.config.train.epochs:
            return False
        self.epoch += 1
        return True

    def finish(self, figures: Optional[FigureWorkers] = None) -> RunSummary:
        """Test evaluation (not for an interrupted run: it will go on), plots and summary.json; the summary.

        The plots are drawn by `figures` when given (the caller's worker processes; this waits for them),
        else here.
        """
        status, test = self.conclude()
        plot_arguments = self.plot_arguments()
        drawing_seconds = figures.submit(*plot_arguments).result() if figures else draw_run(*plot_arguments)
        return self.write_summary(status, test, drawing_seconds)

    def state_dict(self) -> dict[str, Any]:
        """A resume point: everything the next step depends on, and where each log ends (see gradexp.resume)."""
        experiment = self.experiment
        return {
            "format": FORMAT,
            "name": self.config.name,
            "config": self.config.to_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batches_done": self.batches_done,
            "epoch_generator_state": self.epoch_generator_state,
            "random_states": random_states(experiment.device),
            "model": experiment.model.state_dict(),
            "optimizer": experiment.optimizer.state_dict(),
            "schedule": experiment.schedule.state_dict(),
            "clipper": experiment.clipper.state_dict(),
            "best_dev": self.best_dev,
            "best_state": self.best_state,
            "evaluations_without_improvement": self.evaluations_without_improvement,
            "log_sizes": {**self.recorder.log_sizes(), EVALUATIONS: self.eval_log.size},
            "seconds": self._seconds(),
            "resumed_at_steps": self.resumed_at_steps,
        }

    def load_state_dict(self, point: dict[str, Any]) -> None:
        experiment = self.experiment
        self.step, self.epoch, self.batches_done = point["step"], point["epoch"], point["batches_done"]
        self.epoch_generator_state = point["epoch_generator_state"]
        # The loop starts the epoch again from this state, drawing its order anew, then skips the batches done.
        self.generator.set_state(self.epoch_generator_state)
        restore_random_states(point["random_states"])
        experiment.model.load_state_dict(point["model"])
        experiment.optimizer.load_state_dict(point["optimizer"])
        experiment.schedule.load_state_dict(point["schedule"])
        experiment.clipper.load_state_dict(point["clipper"])
        self.best_dev, self.best_state = point["best_dev"], point["best_state"]
        self.evaluations_without_improvement = point["evaluations_without_improvement"]
        self.seconds_before = point["seconds"]
        self.resumed_at_steps = list(point["resumed_at_steps"])

    def _open_log(self, name: str, columns: list[str], resume_point: Optional[dict[str, Any]]) -> CsvLog:
        """A new log, or the resumed run's own, cut back to the size the resume point recorded."""
        if resume_point is None:
            return CsvLog(self.run_dir / name, columns)
        return CsvLog.resume(self.run_dir / name, columns, resume_point["log_sizes"][name])

    def _seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def _save_resume_point(self) -> None:
        """Logs on disk first, then best.pt, then last.pt: a resume point never names rows the disk lacks."""
        self.recorder.sync()
        self.eval_log.sync()
        self._save_best()
        save_checkpoint(self.run_dir / RESUME_POINT, self.state_dict())
        self.resume_point_time = time.perf_counter()

    def _save_best(self) -> None:
        if self.best_saved or self.best_dev is None:
            return
        dev = {key: value for key, value in self.best_dev.items() if key != "step"}
        save_checkpoint(self.run_dir / BEST_CHECKPOINT, {"model": self.best_state, "step": self.best_dev["step"],
                                                   "dev": dev, "config": self.config.to_dict()})
        self.best_saved = True

    def _end_step(self) -> bool:
        stop = self.stop_requests.received
        train_config = self.config.train
        due_for_eval = self.evaluation_due()
        if not (stop or due_for_eval or self.recorder.pending >= train_config.flush_every):
            return False
        if self._flush():
            return True
        if due_for_eval:
            self._evaluate_dev()
            if self.early_stopped:
                return True
        # After the step's rows and evaluation are written, so the logs reach the resume point's step.
        if stop or time.perf_counter() - self.resume_point_time >= train_config.resume_point_seconds:
            self._save_resume_point()
        if stop:
            self.stopped_by = stop.name
            return True
        return False

    def evaluation_due(self) -> bool:
        """Whether the step just taken is followed by a dev evaluation (train.eval_every, train.eval_at)."""
        every, step = self.config.train.eval_every, self.step
        counted = step if self.config.train.eval_at == "gradexp" else step - 1  # the book counts from 0
        return (counted > 0 and counted % every == 0) or step == self.total_steps

    def _unrecorded_norms(self, count: int):
        placeholder = torch.full((count,), math.nan, dtype=torch.float64, device=self.experiment.device)
        return lambda grads: placeholder

    def _epoch_split(self) -> Split:
        resample = self.experiment.dataset.resample_train
        if resample is None:
            return self.train_split
        return resample(self.generator).to(self.experiment.device, self.experiment.dtype)

    def _flush(self) -> bool:
        """Write pending rows; True once the run has diverged."""
        if self.divergence is None:
            self.divergence = self.recorder.flush()
        return self.divergence is not None

    def _evaluate_dev(self) -> None:
        if self.dev_split is None:
            return
        metric = self.experiment.metric
        dev = evaluate(self.experiment.model, self.dev_split, self.experiment.mean_loss, metric)
        self.eval_log.write_rows([[self.step, self.epoch, "dev", dev["loss"], dev[metric.name]]])
        self.eval_log.flush()
        self.experiment.schedule.evaluated(dev)
        if metric.improves(dev[metric.name], self.best_dev[metric.name] if self.best_dev else None):
            self.evaluations_without_improvement = 0
            self.best_dev = {"step": self.step, **dev}
            self.best_state = {name: tensor.detach().clone() for name, tensor in
                               self.experiment.model.state_dict().items()}
            self.best_saved = False
        else:
            self.evaluations_without_improvement += 1
        patience = self.config.train.patience
        self.early_stopped = patience is not None and self.evaluations_without_improvement >= patience
        self.reporter.evaluated(self.step, dev)

    def _evaluate_test(self) -> Optional[dict[str, float]]:
        if self.test_split is None:
            return None
        model = self.experiment.model
        if self._test_model() == "best":
            if self.best_state is None:
                return None
            model.load_state_dict(self.best_state)
        metric = self.experiment.metric
        test = evaluate(model, self.test_split, self.experiment.mean_loss, metric)
        self.eval_log.write_rows([[self.step, self.epoch, "test", test["loss"], test[metric.name]]])
        return test

    def _test_model(self) -> str:
        # Early stopping restores the best model whatever train.keep says (seed 003).
        return "best" if self.early_stopped else self.config.train.keep

    def _status(self) -> str:
        if self.divergence is not None:
            return "diverged"
        return "interrupted" if self.stopped_by is not None else "completed"

    def conclude(self) -> tuple[str, Optional[dict[str, Any]]]:
        """Once the loop has returned: the last rows, the run's status, best.pt, and its test evaluation.

        What comes before the plots. A diverged run ends at the step and epoch of its first non-finite row.
        """
        self._flush()
        self.recorder.close()
        if self.divergence is not None:
            self.step, self.epoch = self.divergence.step, self.divergence.epoch
        status = self._status()
        self._save_best()
        with torch_threads(self.config.train.threads):
            test = self._evaluate_test() if status != "interrupted" else None
        self.eval_log.close()
        self.concluded_seconds = self._seconds()
        return status, test

    def abandon(self) -> None:
        """Close the logs of a run whose driver crashed: its rows up to the crash stay, and no summary is written."""
        self.recorder.close()
        self.eval_log.close()

    def plot_arguments(self) -> tuple[Path, PlotConfig, list[str]]:
        """plot_run's arguments for this run."""
        return self.run_dir, self.config.plot, self.experiment.plot_parameters

    def write_summary(self, status: str, test: Optional[dict[str, Any]], drawing_seconds: float) -> RunSummary:
        """summary.json, written once the plots are: the last file of a finished run folder. Its `seconds` are
        the run's up to conclude, and the `drawing_seconds` its plots took (wherever they were drawn).

        A finished run needs no resume point any more, so last.pt goes once summary.json is written.
        """
        diverged = self.divergence is not None
        values = {
            "name": self.config.name,
            "status": status,
            "interrupted_by": self.stopped_by,
            "resumed_at_steps": self.resumed_at_steps,
            "diverged": diverged,
            "diverged_at_step": self.divergence.step if diverged else None,
            "diverged_parameter": self.divergence.parameter if diverged else None,
            "early_stopped": self.early_stopped,
            "steps": self.step,
            "epochs": self.epoch,
            "seconds": round(self.concluded_seconds + drawing_seconds, 3),
            "metric": self.experiment.metric.name,
            "best_dev": self.best_dev,
            "test": test,
            "test_model": self._test_model(),
            **self.recorder.statistics(),
            "parameters": self.experiment.parameter_names,
            "plot_parameters": self.experiment.plot_parameters,
            "clip": self.config.to_dict()["clip"],
            **environment(self.experiment.device),
        }
        # What this returns is what the file holds: a non-finite test metric (a diverged model) is null in both.
        summary = RunSummary(**json_ready(values))
        summary.write(self.run_dir / SUMMARY)
        if status != "interrupted":
            try:
                (self.run_dir / RESUME_POINT).unlink(missing_ok=True)
            except OSError as failure:
                raise OutputError(str(self.run_dir / RESUME_POINT), f"cannot be removed ({failure.strerror})") from None
        self.reporter.run_finished(summary)
        return summary
