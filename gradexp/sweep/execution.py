"""Training a sweep's points through the one run path (gradexp.runner.run), one at a time or several at once.

With `jobs` > 1 every point trains in its own worker process (spawned, so CUDA works in them), each
worker with `threads` torch threads, or cores / jobs so the workers do not fight over the cores. A point that
fails (a config its builders reject, a crash) is recorded as failed and the others go on.
SIGINT/SIGTERM stop the sweep: no new point starts, and the points never started are recorded
as not run. A running point stops at the end of its step, as `gradexp run` does (status
interrupted), when the signal reaches it: Ctrl-C in a terminal reaches every worker; a signal sent to
the sweep's process alone lets running points finish.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from gradexp.config.schema import ExperimentConfig
from gradexp.errors import GradexpError
from gradexp.interrupts import StopRequests
from gradexp.sweep.grid import SweepPoint
from gradexp.threads import torch_threads

FAILED = "failed"
NOT_RUN = "not run"
INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class PointOutcome:
    """What became of one point: its run folder (None when none was made), status and error."""

    point: SweepPoint
    status: str
    run_dir: Optional[Path] = None
    error: Optional[str] = None


def failure_text(failure: BaseException) -> str:
    if isinstance(failure, GradexpError):
        return str(failure)
    return f"{type(failure).__name__}: {failure}"


def train_point(config: ExperimentConfig, sweep_dir: Path) -> tuple[str, Optional[Path], Optional[str]]:
    """Run one point into `sweep_dir`; returns (status, run folder, error) and never raises.

    A run that crashed after its folder was made keeps that folder (its metrics up to the crash).
    """
    from gradexp.runner import run

    try:
        result = run(config, sweep_dir)
    except Exception as failure:  # noqa: BLE001  (one point's crash must not end the sweep)
        started = sorted(sweep_dir.glob(f"{config.name}-*"))
        return FAILED, started[-1] if started else None, failure_text(failure)
    return result.summary["status"], result.run_dir, None


def _start_worker(threads: int) -> None:
    """Share the cores among the workers; leave Ctrl-C to the runner's own handler while a point trains.

    A worker waiting for its next point ignores SIGINT: Ctrl-C reaches every process in the
    terminal's group, and an idle worker that died of it would take the whole pool with it.
    """
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the platform tells), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    return max(1, usable_cores() // jobs)


def run_points(points: Sequence[tuple[SweepPoint, ExperimentConfig]], sweep_dir: Path, jobs: int,
               finished: Callable[[PointOutcome], None], threads: Optional[int] = None) -> list[PointOutcome]:
    """Train every (point, config); `finished` hears of each outcome as it comes. Returns them in point order.

    `threads`: torch threads per point. On CPU the float32 sums inside a step are split among the
    threads, so the same point trained with another thread count writes other last digits; a fixed
    count makes a point's metrics.csv the same whatever `jobs` (and the same as a Ray task's with as many CPUs).
    """
    outcomes: dict[int, PointOutcome] = {}

    def record(point: SweepPoint, status: str, run_dir: Optional[Path], error: Optional[str]) -> None:
        outcomes[point.index] = PointOutcome(point, status, run_dir, error)
        finished(outcomes[point.index])

    with StopRequests() as stop:
        if jobs == 1:
            with torch_threads(threads or torch.get_num_threads()):
                for point, config in points:
                    if stop.received is not None:
                        break
                    record(point, *train_point(config, sweep_dir))
                    if outcomes[point.index].status == INTERRUPTED:
                        break
        else:
            _run_in_workers(points, sweep_dir, jobs, stop, record, threads or threads_per_job(jobs))
    for point, _ in points:
        outcomes.setdefault(point.index, PointOutcome(point, NOT_RUN))
    return [outcomes[point.index] for point, _ in points]


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
