"""A 64-point SRN sweep (learning rate x clip threshold) trained one run at a time and with --vectorize.

Run: python benchmarks/bench_sweep.py [--quick]     (also section 3 of bench_srn.py and `make bench`)

Both sweeps go through gradexp.sweep.run_sweep on configs/srn_clip.yaml (per-tensor norm clipping)
and write the same 64 run folders (metrics, evaluations, checkpoints, resume points, two PDF plots
each) plus sweep.csv and sweep.pdf. Throughput is optimizer steps summed over the runs per second
of wall time. One at a time, each run's PDFs are drawn in worker processes while the next run trains; a
vectorized batch draws its runs' PDFs on every core at once when they end together. So drawing cannot
be timed apart: each sweep runs twice, as it is and with no figure drawn, and the table shows both.
Both sweeps train with the config's train.threads (1); a third row runs the vectorized sweep with
train.threads set to every core, which only a batch's larger products gain from.
Targets: vectorized >= 5x one at a time (issue 6); >= 2x by the wall clock, drawing included (issue 16).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

import gradexp.plotting.runs
import gradexp.sweep
from gradexp.sweep import plan_sweep, run_sweep
from gradexp.sweep.backends.local import LocalBackend
from gradexp.sweep.backends.vectorized import VectorizedBackend
from gradexp.threads import usable_cores

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "srn_clip.yaml"
ALL_CORES = usable_cores()
GRID = ("optimizer.lr=0.01,0.02,0.05,0.1,0.2,0.3,0.5,1.0", "clip.threshold=0.5,1,2,5,10,20,50,none")


@dataclass(frozen=True)
class SweepTiming:
    runs: int
    steps: int
    wall_seconds: float
    # The same sweep with no figure drawn (no run PDFs, no sweep.pdf), timed apart.
    wall_seconds_without_drawing: float

    @property
    def throughput(self) -> float:
        return self.steps / self.wall_seconds

    @property
    def throughput_without_drawing(self) -> float:
        return self.steps / self.wall_seconds_without_drawing


@contextmanager
def no_drawing() -> Iterator[None]:
    """Inside the block no run's figures and no sweep.pdf are drawn. A one-at-a-time sweep draws in worker
    processes while the next run trains, so drawing cannot be timed apart from the sweep: the sweep is run
    again without it. plot_run is looked up where it is called, in this process or a forked worker."""
    originals = {(gradexp.plotting.runs, "plot_run"): gradexp.plotting.runs.plot_run,
                 (gradexp.sweep, "write_sweep_pdf"): gradexp.sweep.write_sweep_pdf}
    for module, name in originals:
        setattr(module, name, lambda *args, **kwargs: None)
    try:
        yield
    finally:
        for (module, name), function in originals.items():
            setattr(module, name, function)


def warm_up(device: torch.device) -> None:
    """A two-run sweep each way first, so one-time costs (imports torch does on first use, vmap's set-up)
    fall on neither timed sweep."""
    plan = plan_sweep(CONFIG, ["train.epochs=1", f"train.device={device.type}"], ["optimizer.lr=0.1,0.2"], seeds=1)
    for vectorize in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            run_sweep(plan, folder, VectorizedBackend() if vectorize else LocalBackend())


def time_sweep(epochs: int, device: torch.device, vectorize: bool, threads: int = 1) -> SweepTiming:
    """The sweep timed as it is, then again without drawing."""
    plan = plan_sweep(CONFIG, [f"train.epochs={epochs}", f"train.device={device.type}", f"train.threads={threads}"],
                      GRID, seeds=1)
    walls = []
    for drawing in (True, False):
        with tempfile.TemporaryDirectory() as folder, (nullcontext() if drawing else no_drawing()):
            started = time.perf_counter()
            result = run_sweep(plan, folder, VectorizedBackend() if vectorize else LocalBackend())
            walls.append(time.perf_counter() - started)
    return SweepTiming(len(result.outcomes), int(result.table["steps"].sum()), *walls)


def sweep_benchmark(quick: bool, device: torch.device, print_table: Callable[[Sequence[str], Sequence], None]) -> None:
    epochs = 4 if quick else 20
    warm_up(device)
    one_at_a_time = time_sweep(epochs, device, vectorize=False)
    sweeps = {"one at a time": one_at_a_time,
              "--vectorize": time_sweep(epochs, device, vectorize=True),
              # the batch's products on every core: other last digits than one thread, so a setting of the config
              f"--vectorize, train.threads={ALL_CORES}": time_sweep(epochs, device, vectorize=True, threads=ALL_CORES)}
    print(f"\n3. Sweep of {one_at_a_time.runs} SRN runs ({GRID[0].split('=')[0]} x {GRID[1].split('=')[0]}, "
          f"{epochs} epochs each); throughput = optimizer steps of all runs per second")
    print_table(["sweep", "wall s", "wall s without drawing", "steps/s", "steps/s without drawing"],
                [[name, timing.wall_seconds, timing.wall_seconds_without_drawing, timing.throughput,
                  timing.throughput_without_drawing] for name, timing in sweeps.items()])
    for name, timing in list(sweeps.items())[1:]:
        overall = timing.throughput / one_at_a_time.throughput
        training = timing.throughput_without_drawing / one_at_a_time.throughput_without_drawing
        print(f"{name} / one at a time: {overall:.2f}x overall, {training:.2f}x without drawing PDFs "
              f"(target >= 5: {'met' if training >= 5 else 'not met'} without drawing, "
              f"{'met' if overall >= 5 else 'not met'} overall)")
    overall = one_at_a_time.wall_seconds / sweeps["--vectorize"].wall_seconds
    print(f"issue 16's target, --vectorize >= 2x one at a time by the wall clock, drawing included, at 20 epochs: "
          f"{overall:.2f}x at {epochs} epochs ({'meets' if overall >= 2 else 'misses'}"
          f"{'' if epochs == 20 else '; --quick: not the target length'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 epochs per run instead of 20")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    from bench_srn import print_table

    sweep_benchmark(args.quick, torch.device(args.device), print_table)


if __name__ == "__main__":
    main()
