"""The local backend: a sweep's points trained here through the one run path, one at a time or several at once.

One at a time, each finished run's plots are drawn in worker processes (one per core) while the next point
trains: on a 2-core machine drawing is most of a short run's cost.

With `jobs` > 1 every point trains in its own worker process (spawned, so CUDA works in them), each
worker with `threads` torch threads, or cores / jobs so the workers do not fight over the cores. A point that
fails (a config its builders reject, a crash) is recorded as failed and the others go on.
SIGINT/SIGTERM stop the sweep: no new point starts, and the points never started are recorded
as not run. A running point stops at the end of its step, as `gradexp run` does (status
interrupted), when the signal reaches it: Ctrl-C in a terminal reaches every worker; a signal sent to
the sweep's process alone lets running points finish.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from gradexp.config.schema import ExperimentConfig
from gradexp.drawing import FigureWorkers
from gradexp.experiment import DatasetCache
from gradexp.interrupts import StopRequests
from gradexp.sweep.grid import SweepPoint
from gradexp.sweep.outcomes import (FAILED, INTERRUPTED, NOT_RUN, ConcludedPoint, PointOutcome, conclude_point,
                                    failure_text, finish_point, train_point)
from gradexp.threads import torch_threads, usable_cores


@dataclass(frozen=True)
class LocalBackend:
    """`jobs` points at once, each with `threads` torch threads while it is not training (default: the
    cores shared among the jobs; the training itself uses the config's train.threads).

    On CPU the float32 sums inside a step are split among the threads, so the same point trained with
    another thread count writes other last digits; a fixed count makes a point's metrics.csv the same
    whatever `jobs` (and the same as a Ray task's with as many CPUs).
    """

    jobs: int = 1
    threads: Optional[int] = None

    @property
    def settings(self) -> dict[str, Any]:
        return {"backend": "local", "jobs": self.jobs, "cpus_per_run": self.threads}

    def __call__(self, points: Sequence[tuple[SweepPoint, ExperimentConfig]], sweep_dir: Path,
                 finished: Callable[[PointOutcome], None]) -> list[PointOutcome]:
        """Train every (point, config); `finished` hears of each outcome as it comes. Returns them in point order."""
        outcomes: dict[int, PointOutcome] = {}

        def record(point: SweepPoint, status: str, run_dir: Optional[Path], error: Optional[str]) -> None:
            outcomes[point.index] = PointOutcome(point, status, run_dir, error)
            finished(outcomes[point.index])

        with StopRequests() as stop:
            if self.jobs == 1:
                with torch_threads(self.threads or torch.get_num_threads()):
                    _run_drawing_aside(points, sweep_dir, stop, record)
            else:
                _run_in_workers(points, sweep_dir, self.jobs, stop, record,
                                self.threads or max(1, usable_cores() // self.jobs))
        for point, _ in points:
            outcomes.setdefault(point.index, PointOutcome(point, NOT_RUN))
        return [outcomes[point.index] for point, _ in points]


def _run_drawing_aside(points: Sequence[tuple[SweepPoint, ExperimentConfig]], sweep_dir: Path,
                       stop: StopRequests, record: Callable[..., None]) -> None:
    """One point at a time, each one's plots drawn in FigureWorkers (one per core) while the next trains.

    A point is recorded once its summary.json is written, after its plots: its folder is complete then; and
    in the order the points trained, so the progress lines come in order. At most two drawings per worker
    wait, so a sweep whose drawing is slower than its training holds few finished runs in memory. Points
    that share their data (data section and seed) build it once.
    """
    datasets = DatasetCache(capacity=len({point.seed for point, _ in points}))
    waiting: collections.deque[tuple[concurrent.futures.Future, SweepPoint, ConcludedPoint]] = collections.deque()

    def record_drawn(at_most_waiting: int) -> None:
        while waiting and (waiting[0][0].done() or len(waiting) > at_most_waiting):
            future, point, trained = waiting.popleft()
            record(point, *finish_point(trained, future.result))

    processes = usable_cores()
    with FigureWorkers(processes) as figures:
        for point, config in points:
            if stop.received is not None:
                break
            trained = conclude_point(config, sweep_dir, datasets=datasets)
            if not isinstance(trained, ConcludedPoint):
                record(point, *trained)
                continue
            waiting.append((figures.submit(*trained.training.plot_arguments()), point, trained))
            record_drawn(at_most_waiting=2 * processes)
            if trained.status == INTERRUPTED:
                break
        record_drawn(at_most_waiting=0)


def _start_worker(threads: int) -> None:
    """Share the cores among the workers; leave Ctrl-C to the runner's own handler while a point trains.

    A worker waiting for its next point ignores SIGINT: Ctrl-C reaches every process in the
    terminal's group, and an idle worker that died of it would take the whole pool with it.
    """
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_in_workers(points: Sequence[tuple[SweepPoint, ExperimentConfig]], sweep_dir: Path, jobs: int,
                    stop: StopRequests, record: Callable[..., None], threads: int) -> None:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_start_worker,
                                                initargs=(threads,)) as pool:
        pending = {pool.submit(train_point, config, sweep_dir): point for point, config in points}
        while pending:
            done, _ = concurrent.futures.wait(pending, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                point = pending.pop(future)
                try:
                    trained = future.result()
                except Exception as failure:  # noqa: BLE001  (a worker that died takes only its point)
                    trained = (FAILED, None, failure_text(failure))
                # Outside the try: a failure of `finished` is the caller's bug, not this point's.
                record(point, *trained)
            if stop.received is not None:
                for future in pending:
                    future.cancel()
                pending = {future: point for future, point in pending.items() if not future.cancelled()}
