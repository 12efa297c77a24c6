"""How fast gradexp trains E1 next to the article's hand-written loop, and how a run scales (issue 6).

Run: python benchmarks/bench_srn.py [--quick]        (or: make bench)

1. Side by side in one process, interleaved round by round (a, b, c, ... a, b, c, ...), medians of
   the rounds: (a) the article's loop (benchmarks/article_loop.py), (b) gradexp's runner on
   configs/srn_explode.yaml recording every norm, (c) the same with train.record_norms=false;
   (b) and (c) once per SRN backend (loop, fused). Every side times its training loop only (the
   steps, dev evaluations and checkpoints); building the data and plotting are left out of all.
   Targets: b/c >= 0.95 and b >= 1.5 a.
2. Scaling: gradexp's step time and peak memory against the sequence length and the hidden size,
   each point in a fresh process so its peak memory is its own.
3. Sweeps: a 64-point grid of learning rate x clip threshold trained by `--vectorize` against the
   same runs one at a time (benchmarks/bench_sweep.py). Target: 5x the throughput.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from article_loop import train_like_the_article
from gradexp.config.loading import load_config
from gradexp.runner import SilentReporter, run

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "srn_explode.yaml"
BACKENDS = ("bptt", "loop", "fused")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description(device: torch.device) -> str:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return (f"{where}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} "
            f"thread(s), python {platform.python_version()}, device {device}")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else f"{c:.4g}" for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


# --- 1. side by side -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timing:
    """One timed training loop: its steps, wall-clock and CPU seconds, and the gradient norms it recorded."""

    steps: int
    wall_seconds: float
    cpu_seconds: float
    norms: pd.DataFrame


def time_article_loop(overrides: list[str], device: torch.device) -> Timing:
    timing = train_like_the_article(load_config(CONFIG, overrides), device)
    norms = pd.DataFrame({f"grad_norm/{name}": values for name, values in timing.grad_norms.items()})
    return Timing(timing.steps, timing.seconds, timing.cpu_seconds, norms)


class LoopClock(SilentReporter):
    """Times the runner's loop as the article's is timed: from the first step to the end of the last evaluation.

    (summary.json's `seconds` also counts the test evaluation and the plots.)
    """

    def run_started(self, run_dir: Path, total_steps: int) -> None:
        self.total_steps = total_steps
        self.started = time.perf_counter(), time.process_time()

    def evaluated(self, step: int, dev: dict[str, float]) -> None:
        if step == self.total_steps:
            self.wall_seconds = time.perf_counter() - self.started[0]
            self.cpu_seconds = time.process_time() - self.started[1]


def time_gradexp(overrides: list[str]) -> Timing:
    clock = LoopClock()
    with tempfile.TemporaryDirectory() as folder:
        result = run(load_config(CONFIG, overrides), folder, clock)
        metrics = pd.read_csv(result.run_dir / "metrics.csv")
    return Timing(result.summary.steps, clock.wall_seconds, clock.cpu_seconds, metrics)


def verdict(value: float, target: float) -> str:
    return f"{value:.3g} ({'meets' if value >= target else 'misses'} >= {target})"


def side_by_side(repeats: int, epochs: int, device: torch.device) -> None:
    common = [f"train.epochs={epochs}", f"train.device={device.type}"]
    variants: dict[str, Callable[[], Timing]] = {"a  article loop": lambda: time_article_loop(common, device)}
    for backend in BACKENDS:
        chosen = common + [f"model.backend={backend}"]
        variants[f"b  gradexp, {backend}"] = lambda chosen=chosen: time_gradexp(chosen)
        variants[f"c  gradexp, {backend}, recording off"] = \
            lambda chosen=chosen: time_gradexp(chosen + ["train.record_norms=false"])
    norms = {name: measure().norms for name, measure in variants.items()}  # warm-up round, not counted
    timings: dict[str, list[Timing]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, measure in variants.items():
            timings[name].append(measure())
    print(f"\n1. E1 explosion run ({epochs} epochs, {timings['a  article loop'][0].steps} steps): steps/s, "
          f"median of {repeats} interleaved rounds, by the wall clock and per CPU second")
    wall = {name: statistics.median(t.steps / t.wall_seconds for t in runs) for name, runs in timings.items()}
    cpu = {name: statistics.median(t.steps / t.cpu_seconds for t in runs) for name, runs in timings.items()}
    print_table(["variant", "wall steps/s", "wall min", "wall max", "CPU steps/s"],
                [[name, wall[name], min(t.steps / t.wall_seconds for t in runs),
                  max(t.steps / t.wall_seconds for t in runs), cpu[name]] for name, runs in timings.items()])
    print()
    for backend in BACKENDS:
        b, c = f"b  gradexp, {backend}", f"c  gradexp, {backend}, recording off"
        for clock, speeds in (("wall", wall), ("CPU", cpu)):
            print(f"{backend:>5} backend, {clock:>4}: b/a = {verdict(speeds[b] / speeds['a  article loop'], 1.5)}, "
                  f"b/c = {verdict(speeds[b] / speeds[c], 0.95)}")
    reference = norms["a  article loop"]
    # Only until the explosion: from step 3 on, lr 0.2 on a summed loss multiplies float32 rounding (which
    # differs between backends that add the same terms in another order) about a hundredfold a step.
    same = all(np.allclose(norms[f"b  gradexp, {backend}"][column].to_numpy()[:3], reference[column].to_numpy()[:3],
                           rtol=1e-4) for backend in BACKENDS for column in reference.columns)
    print(f"a and b record the same gradient norms over the first 3 steps (rtol 1e-4): {'yes' if same else 'NO'}")


# --- 2. scaling ------------------------------------------------------------------------------------

def peak_resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmRSS in /proc/self/status")


def reset_peak_resident() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM to the current resident size."""
    Path("/proc/self/clear_refs").write_text("5")


def scaling_point(length: int, hidden: int, backend: str, epochs: int, threads: int, device_name: str) -> tuple[float, float]:
    """In a fresh process: (ms per step, peak memory in MiB added by the run) of gradexp with full recording."""
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    overrides = [f"data.length={length}", f"model.hidden_size={hidden}", f"model.backend={backend}",
                 f"train.device={device_name}"]
    time_gradexp(overrides + ["train.epochs=1"])  # warm-up: lazy initialisation, allocator pools
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
    else:
        reset_peak_resident()
        baseline = resident_bytes()
    timing = time_gradexp(overrides + [f"train.epochs={epochs}"])
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_resident_bytes()
    return 1000 * timing.wall_seconds / timing.steps, (peak - baseline) / 2 ** 20


def scaling(lengths: Sequence[int], hiddens: Sequence[int], epochs: int, device: torch.device) -> None:
    points = [(length, 32) for length in lengths] + [(20, hidden) for hidden in hiddens if hidden != 32]
    results: dict[tuple[int, int, str], tuple[float, float]] = {}
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context, max_tasks_per_child=1) as pool:
        for length, hidden in points:
            for backend in BACKENDS:
                results[length, hidden, backend] = pool.submit(
                    scaling_point, length, hidden, backend, epochs, torch.get_num_threads(), device.type).result()
    memory_kind = "CUDA max allocated" if device.type == "cuda" else "peak RSS added"
    print(f"\n2. Scaling: gradexp with full recording, {epochs * 5} steps, batch 64, input size 32; "
          f"memory = {memory_kind} (MiB)")
    print_table(["length", "hidden", *(f"{backend} ms/step" for backend in BACKENDS),
                 *(f"{backend} speed-up" for backend in BACKENDS if backend != "loop"),
                 *(f"{backend} MiB" for backend in BACKENDS)],
                [[length, hidden, *(results[length, hidden, backend][0] for backend in BACKENDS),
                  *(results[length, hidden, "loop"][0] / results[length, hidden, backend][0]
                    for backend in BACKENDS if backend != "loop"),
                  *(results[length, hidden, backend][1] for backend in BACKENDS)]
                 for length, hidden in points])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter runs, fewer scaling points")
    parser.add_argument("--repeats", type=int, help="interleaved rounds of section 1 [5; --quick: 3]")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads [1: the E1 matrices are too small to split, and on a shared 2-core "
                             "machine a second thread that waits for a busy core slows each step many times]")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sections", default="1,2,3", help="which sections to run, e.g. 1,3")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sections = {int(part) for part in args.sections.split(",")}
    started = time.perf_counter()
    print(f"machine: {machine_description(device)}")
    if 1 in sections:
        side_by_side(args.repeats or (3 if args.quick else 5), 10 if args.quick else 50, device)
    if 2 in sections:
        if args.quick:
            scaling((5, 20, 200), (32, 512), 2, device)
        else:
            scaling((5, 10, 20, 50, 100, 200), (32, 64, 128, 256, 512), 6, device)
    if 3 in sections:
        from bench_sweep import sweep_benchmark

        sweep_benchmark(quick=args.quick, device=device, print_table=print_table)
    print(f"\nbenchmark took {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
