"""The Ray backend (`gradexp sweep --backend ray`): every point of a sweep is a Ray task, on a Ray cluster or a
local Ray instance.

Ray (https://docs.ray.io, the optional extra gradexp[ray]) is imported only here, and only when a
sweep asks for it. No filesystem is shared between the driver and the workers: a task trains its
point through the one run path (sweep.outcomes.train_point) into a temporary
folder on its worker and returns the run folder's files; the driver writes them under the sweep
folder, so the run folders, sweep.csv and sweep.pdf are those a local sweep writes.

Faults. A task whose worker process dies (killed, out of memory, its node lost) runs again from
the start, up to `retries` more times (Ray's max_retries); so does one whose worker cannot write
its temporary folder (an OSError outside the run: Ray's retry_exceptions). A point that crashes
inside its run fails at once, as it does locally: the same config would crash again. A point
that still fails is recorded as failed with Ray's error, and the others go on.

Stopping. SIGINT (Ctrl-C) or SIGTERM to the driver raises a stop flag (a small Ray actor every task
asks before it trains), then cancels every outstanding task (ray.cancel): a task not started yet
is not run; a training one receives the interrupt as `gradexp run` does, stops after its step and
comes back as an interrupted run (resumable with `gradexp run --resume`); one interrupted before
its training began is not run. The flag covers what ray.cancel misses: a task already handed to a
worker that is still starting (every point gets a fresh worker), whose cancel that worker drops
when it ignores SIGINT (see train_and_pack), would otherwise train to the end. Finished runs are
already complete under the sweep folder.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Optional, Sequence

import torch

from gradexp.config.schema import ExperimentConfig
from gradexp.errors import OptionError, OutputError
from gradexp.interrupts import StopRequests
from gradexp.recording.files import write_bytes
from gradexp.sweep.outcomes import FAILED, NOT_RUN, PointOutcome, failure_text, train_point
from gradexp.sweep.grid import SweepPoint

# Prefix of the temporary folder a task trains its point in, on its worker.
SCRATCH_PREFIX = "gradexp-ray-"
# How long the driver waits for a finished task before it looks for a stop request again.
WAIT_SECONDS = 0.5


def import_ray() -> ModuleType:
    """The ray package, or an OptionError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise OptionError("--backend ray", "Ray is not installed; install gradexp[ray] "
                                           "(pip install 'gradexp[ray]')") from None
    return ray


@dataclass(frozen=True)
class RaySession:
    """The Ray cluster a sweep runs on."""

    address: str
    # Where the Ray dashboard is, when the cluster runs one (it needs Ray's optional dashboard packages).
    dashboard_url: Optional[str]
    # True for a local Ray instance started for this sweep and shut down after it.
    started_here: bool


@contextmanager
def ray_session(address: Optional[str] = None) -> Iterator[RaySession]:
    """Connect to Ray for the duration of a sweep.

    `address` (host:port, ray://host:port or auto) names the cluster. Without one: the connection
    this process already has (a ray.init of its own), else the cluster named by RAY_ADDRESS, else
    the cluster `ray start` runs on this machine, else a new local Ray instance with every core.
    A connection made here is closed on exit, which stops a local instance started here; a
    cluster keeps running. Raises OptionError when Ray cannot connect or start.
    """
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS")
    if address is None and ray.is_initialized():
        yield RaySession(ray.get_runtime_context().gcs_address, None, started_here=False)
        return
    if address is not None:
        check_reachable(address)
    try:
        context, started_here = _connect(ray, address)
    except (ConnectionError, ValueError, RuntimeError) as failure:
        # Ray authenticates a connection to an address it was given only when told to (its token-auth docs).
        hint = "" if address is None or os.environ.get("RAY_AUTH_MODE") else (
            "; a cluster that uses token authentication also needs RAY_AUTH_MODE=token and its token "
            "(`ray get-auth-token` on the head) in RAY_AUTH_TOKEN or ~/.ray/auth_token")
        option, attempt = (("--address", f"cannot connect to the Ray cluster at {address}") if address else
                           ("--backend ray", "cannot start a local Ray instance"))
        raise OptionError(option, f"{attempt}: {first_line(str(failure))}{hint}") from None
    try:
        yield RaySession(context.address_info["gcs_address"], dashboard_link(context.dashboard_url), started_here)
    finally:
        ray.shutdown()


# How long a cluster's address may take to accept a TCP connection before it counts as unreachable.
CONNECT_SECONDS = 10.0


def check_reachable(address: str) -> None:
    """Raise OptionError unless something accepts a connection at `address` (host:port or ray://host:port).

    ray.init does not give up on an address where nothing answers: it logs a warning every 40 s and
    retries forever. A plain TCP connection answers at once. `auto` and `local` are Ray's to resolve.
    """
    host, separator, port = address.split("://", 1)[-1].rpartition(":")
    if not separator or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as failure:
        reason = failure.strerror or type(failure).__name__
        raise OptionError("--address", f"cannot connect to the Ray cluster at {address}: nothing "
                                       f"answers there ({reason}); is `ray start --head` running?") from None


def _connect(ray: ModuleType, address: Optional[str]) -> tuple[Any, bool]:
    """ray.init for a sweep: its context, and whether it started a local instance."""
    if address is not None:
        return ray.init(address=address, logging_level=logging.WARNING), False
    try:
        return ray.init(address="auto", logging_level=logging.WARNING), False
    except ConnectionError:  # no cluster on this machine
        return ray.init(logging_level=logging.WARNING), True


def dashboard_link(url: Optional[str]) -> Optional[str]:
    """Ray gives the dashboard as host:port ("" when it runs none); a terminal makes a link of http://host:port."""
    if not url:
        return None
    return url if "://" in url else f"http://{url}"


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


@dataclass(frozen=True)
class PackedRun:
    """A point's result as a task returns it: train_point's (status, run folder, error), the folder as its files."""

    status: str
    # The run folder's name; None when the point failed before its folder was made.
    folder: Optional[str]
    # Every file in the run folder: its path inside the folder (with / separators) -> its bytes.
    files: dict[str, bytes]
    error: Optional[str]


class StopFlag:
    """Raised once by the driver when the sweep is asked to stop; tasks read it before they train (a Ray actor)."""

    def __init__(self) -> None:
        self.raised = False

    def raise_flag(self) -> None:
        self.raised = True

    def is_raised(self) -> bool:
        return self.raised


def train_and_pack(config: ExperimentConfig, threads: int, stop_flag: Any = None) -> PackedRun:
    """The Ray task: train one point in a temporary folder on this worker and return the run folder's files.

    `stop_flag` (a StopFlag actor): when the driver has raised it, the point is not run.
    """
    # A cancel reaches a task as SIGINT. A worker of a Ray instance started by a driver that ignores SIGINT
    # (a background job of a shell: `gradexp sweep ... &`) inherits the ignoring, and would drop a cancel
    # that comes before the runner installs its handler; Python's own handler makes it a KeyboardInterrupt.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if stop_flag is not None:
        import ray

        if ray.get(stop_flag.is_raised.remote()):
            return PackedRun(NOT_RUN, None, {}, None)
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX) as scratch:
        status, run_dir, error = train_point(config, Path(scratch))
        if run_dir is None:
            return PackedRun(status, None, {}, error)
        files = {path.relative_to(run_dir).as_posix(): path.read_bytes()
                 for path in sorted(run_dir.rglob("*")) if path.is_file()}
        return PackedRun(status, run_dir.name, files, error)


def unpack(packed: PackedRun, sweep_dir: Path) -> Optional[Path]:
    """Write a returned run folder under `sweep_dir`, as the run would have written it there."""
    if packed.folder is None:
        return None
    run_dir = sweep_dir / packed.folder
    try:
        run_dir.mkdir()
        for name in packed.files:
            (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise OutputError(str(run_dir), f"cannot create this run folder ({failure.strerror or failure})") from None
    for name, data in packed.files.items():
        write_bytes(run_dir / name, data)
    return run_dir


def ignore_session(session: RaySession) -> None:
    pass


@dataclass(frozen=True)
class RayBackend:
    """Runs a sweep's points as Ray tasks on the cluster at `address` (see ray_session), connected for the sweep.

    Each task reserves `cpus_per_run` CPUs (its torch threads) and `gpus_per_run` GPUs (a fraction
    shares one); Ray runs as many at once as the cluster's free resources allow. `connected` hears
    of the session once it is open, before any point is sent.
    """

    cpus_per_run: int = 1
    gpus_per_run: float = 0.0
    retries: int = 2
    address: Optional[str] = None
    connected: Callable[[RaySession], None] = ignore_session

    @property
    def settings(self) -> dict[str, Any]:
        """How the points ran, for sweep.yaml."""
        return {"backend": "ray", "cpus_per_run": self.cpus_per_run, "gpus_per_run": self.gpus_per_run,
                "retries": self.retries}

    def __call__(self, points: Sequence[tuple[SweepPoint, ExperimentConfig]], sweep_dir: Path,
                 finished: Callable[[PointOutcome], None]) -> list[PointOutcome]:
        """Train every (point, config) through Ray; `finished` hears of each outcome as it comes.

        Returns the outcomes in point order; a point cancelled before it started is not run.
        """
        with ray_session(self.address) as session:
            self.connected(session)
            return self._train(points, sweep_dir, finished)

    def _train(self, points: Sequence[tuple[SweepPoint, ExperimentConfig]], sweep_dir: Path,
               finished: Callable[[PointOutcome], None]) -> list[PointOutcome]:
        ray = import_ray()
        # max_calls=1: every point trains in a fresh worker process, as `gradexp run` trains in a fresh
        # process; a worker that a cancellation interrupted at an arbitrary place (say, halfway through
        # importing a module) is never used again, and a GPU's memory is released after each point.
        task = ray.remote(max_calls=1)(train_and_pack).options(
            num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=self.retries,
            retry_exceptions=[OSError])
        outcomes: dict[int, PointOutcome] = {}
        # No CPU of its own: the flag must not take a slot a point could train in.
        stop_flag = ray.remote(num_cpus=0)(StopFlag).remote()
        try:
            with StopRequests() as stop:
                pending = {task.remote(config, self.cpus_per_run, stop_flag): point for point, config in points}
                cancelled = False
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                    for reference in done:
                        point = pending.pop(reference)
                        outcome = self._collect(ray, reference, point, sweep_dir)
                        if outcome is not None:
                            outcomes[point.index] = outcome
                            finished(outcome)
                    if stop.received is not None and not cancelled:
                        # The flag first (and waited for): a task that starts after the cancels below still sees it.
                        ray.get(stop_flag.raise_flag.remote())
                        for reference in pending:
                            ray.cancel(reference)
                        cancelled = True
        finally:
            ray.kill(stop_flag)
        return [outcomes.get(point.index, PointOutcome(point, NOT_RUN)) for point, _ in points]

    def _collect(self, ray: ModuleType, reference: Any, point: SweepPoint, sweep_dir: Path) -> Optional[PointOutcome]:
        """The outcome of a finished task; None for a task cancelled before it ran (or that found the stop flag)."""
        try:
            packed = ray.get(reference)
        except ray.exceptions.TaskCancelledError:
            return None
        except ray.exceptions.RayTaskError as failure:  # the task raised: failure.cause is its exception
            return PointOutcome(point, FAILED, error=failure_text(failure.cause))
        except ray.exceptions.RayError as failure:  # the worker or its node died, every retry included
            return PointOutcome(point, FAILED, error=f"{type(failure).__name__} after {self.retries} retries: "
                                                     f"{first_line(str(failure))}")
        if packed.status == NOT_RUN:
            return None
        return PointOutcome(point, packed.status, unpack(packed, sweep_dir), packed.error)
