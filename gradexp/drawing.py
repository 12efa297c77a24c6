"""Drawing run folders' figures (gradexp.plotting.runs.plot_run) away from training: in worker processes while a
sweep's next run trains, side by side when runs end together, and for `gradexp run` in a process started
before torch is imported.

This module imports no plotting library. The plotting stack (matplotlib, pandas: about half a second) is
imported where figures are drawn: by a worker as it starts, which for `gradexp run` is while the run's own
process imports torch, on the other core; or in this process at its first drawing (draw_run).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:
    from gradexp.config.schema import PlotConfig


def draw_run(run_dir: Path, plot: PlotConfig, parameters: Sequence[str]) -> float:
    """plot_run, timed: the seconds drawing took (a run's summary counts them in its `seconds`)."""
    from gradexp.plotting.runs import plot_run  # see the module's docstring

    started = time.perf_counter()
    plot_run(run_dir, plot, parameters)
    return time.perf_counter() - started


class FigureWorkers:
    """Draws runs' figures (draw_run) in `processes` worker processes while the caller goes on.

    A figure is matplotlib's Python work on one core. Workers are forked where that is safe (Linux): they
    start at once, with everything the caller had imported, and use no torch. They ignore SIGINT: Ctrl-C
    reaches every process of the terminal, and a run whose training has ended still gets its figures.
    `start_now` starts them here (rather than at the first drawing), each importing the plotting stack and
    drawing a made-up run's figures (plotting.runs.draw_practice_run) while the caller trains its first run.
    Leaving the `with` block waits for every drawing (and drops those not begun, after an error).
    """

    def __init__(self, processes: int, start_now: bool = False) -> None:
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        self._pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker,
                                         initargs=(os.getpid(), start_now))
        if start_now:
            self._pool.submit(int)  # a forked pool starts all its workers at its first task

    def submit(self, run_dir: Path, plot: PlotConfig, parameters: Sequence[str]) -> "Future[float]":
        """draw_run in a worker; the future holds its seconds, or the error drawing raised."""
        return self._pool.submit(draw_run, run_dir, plot, parameters)

    def __enter__(self) -> FigureWorkers:
        return self

    def __exit__(self, kind: Optional[type], error: Optional[BaseException], trace: Optional[TracebackType]) -> None:
        self._pool.shutdown(wait=True, cancel_futures=error is not None)


def _start_worker(parent: int, practice: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        # A forked worker holds the pipes of the pool's queue itself, so it would wait for work forever if its
        # parent were killed (kill -9): the kernel ends it with its parent instead.
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before that
            os._exit(0)
    # the plotting stack, imported before the first figure is due
    from gradexp.plotting.runs import draw_practice_run
    if practice:
        draw_practice_run()


# linux/prctl.h
PR_SET_PDEATHSIG = 1


def plot_runs(runs: Sequence[tuple[Path, PlotConfig, Sequence[str]]], processes: int) -> float:
    """draw_run for each (run folder, plot settings, parameters), up to `processes` at once (FigureWorkers);
    returns the wall time it took. The first error is raised here."""
    started = time.perf_counter()
    if processes < 2 or len(runs) < 2:
        for run in runs:
            draw_run(*run)
    else:
        with FigureWorkers(min(processes, len(runs))) as workers:
            for future in [workers.submit(*run) for run in runs]:
                future.result()
    return time.perf_counter() - started
