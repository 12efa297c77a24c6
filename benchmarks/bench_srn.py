"""How fast gradexp trains E1 next to hand-written loops, how a run scales, and what its commands cost (issues 6, 16).

Run: python benchmarks/bench_srn.py [--quick]        (or: make bench)

1. Side by side in one process, interleaved round by round (a, b, c, p, ... a, b, c, p, ...), medians
   of the rounds: (a) the article's loop (benchmarks/article_loop.py), (b) gradexp's runner on
   configs/srn_explode.yaml recording everything (record section: every norm, sigma_max, gradients through
   time, update ratios: the default), (c) the same with nothing recorded but the loss, (d) bptt with the
   norms only (the recording before issue 17: target b >= d / 1.1);
   (b) and (c) once per SRN backend (bptt, loop, fused); (p) a plain hand-written loop
   (benchmarks/plain_loop.py) around the book's step-by-step SRN (gradexp's `loop` backend, the model a
   student writes from the book) with torch's default thread count, (p1) the same on one thread, and
   (pb) the plain loop around gradexp's own `bptt` model (what gradexp's bookkeeping costs by itself).
   a, b and c are first compared by their training loops (the steps, dev evaluations and checkpoints,
   building the data and plotting left out of all): targets b/c >= 0.95 and b >= 1.5 a. Then by the
   whole run, what the user waits for: gradexp by its summary's `seconds` (resume points, evaluations,
   checkpoints, the test evaluation and the plots), the plain loop from its first step to its test
   evaluation: target b >= 1.5 p. Where gradexp's run time goes is printed beside it. gradexp's plots
   are drawn in this process here (`gradexp run` draws them in a process of their own, started before
   torch is imported, and waits for them: the same time on the run's clock).
2. Scaling: gradexp's step time and peak memory against the sequence length and the hidden size,
   each point in a fresh process so its peak memory is its own.
3. Sweeps: a 64-point grid of learning rate x clip threshold trained by `--vectorize` against the
   same runs one at a time (benchmarks/bench_sweep.py). Targets: 5x the throughput (issue 6), 2x by
   the wall clock with drawing included (issue 16).
4. Commands: the wall time of gradexp's commands, each a fresh process, against `python -c "import
   torch"` (benchmarks/bench_overhead.py).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from article_loop import train_like_the_article
from plain_loop import DEFAULT_THREADS, train_plainly

import gradexp.runner
from gradexp.config.loading import load_config
from gradexp.recording.files import CsvLog
from gradexp.recording.steps import StepRecorder
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
    """One timed training loop: its steps, wall-clock and CPU seconds, and the gradient norms it recorded.

    `run_seconds`: the whole run the user waits for (gradexp: summary.json's seconds; the plain loop: up to
    its test evaluation; the article's loop: its loop). `phases`: where gradexp's run_seconds went.
    """

    steps: int
    wall_seconds: float
    cpu_seconds: float
    norms: pd.DataFrame
    run_seconds: float
    phases: dict[str, float]


def time_article_loop(overrides: list[str], device: torch.device) -> Timing:
    timing = train_like_the_article(load_config(CONFIG, overrides), device)
    norms = pd.DataFrame({f"grad_norm/{name}": values for name, values in timing.grad_norms.items()})
    return Timing(timing.steps, timing.seconds, timing.cpu_seconds, norms, timing.seconds, {})


def time_plain_loop(overrides: list[str], device: torch.device, threads: int) -> Timing:
    timing = train_plainly(load_config(CONFIG, overrides), device, threads)
    norms = pd.DataFrame({f"grad_norm/{name}": values for name, values in timing.grad_norms.items()})
    return Timing(timing.steps, timing.loop_seconds, timing.cpu_seconds, norms, timing.seconds, {})


class PhaseClock:
    """Seconds spent in chosen functions, each counted once: time in a nested timed call goes to the inner one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self._open: list[str] = []
        self._mark = 0.0

    def timed(self, phase: str, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            now = time.perf_counter()
            if self._open:
                self.seconds[self._open[-1]] += now - self._mark
            self._open.append(phase)
            self._mark = now
            try:
                return function(*args, **kwargs)
            finally:
                now = time.perf_counter()
                self.seconds[self._open.pop()] += now - self._mark
                self._mark = now
        return wrapper


# What a gradexp run does besides its steps, by the public function that does it (as gradexp.runner calls it).
RUN_PHASES = {
    (StepRecorder, "flush"): "flushes (metrics.csv rows, divergence check)",
    (gradexp.runner, "evaluate"): "evaluations (dev, and test at the end)",
    (CsvLog, "sync"): "log fsyncs (before each resume point)",
    (gradexp.runner, "save_checkpoint"): "checkpoints (last.pt, best.pt)",
    (gradexp.runner, "draw_run"): "plots (the run's PDFs)",
}


@contextmanager
def phases_timed() -> Iterator[PhaseClock]:
    clock = PhaseClock()
    originals = {place: getattr(*place) for place in RUN_PHASES}
    for (owner, name), phase in RUN_PHASES.items():
        setattr(owner, name, clock.timed(phase, originals[owner, name]))
    try:
        yield clock
    finally:
        for (owner, name), function in originals.items():
            setattr(owner, name, function)


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
    with tempfile.TemporaryDirectory() as folder, phases_timed() as phases:
        result = run(load_config(CONFIG, overrides), folder, clock)
        metrics = pd.read_csv(result.run_dir / "metrics.csv")
    return Timing(result.summary.steps, clock.wall_seconds, clock.cpu_seconds, metrics, result.summary.seconds,
                  dict(phases.seconds))


def verdict(value: float, target: float) -> str:
    return f"{value:.3g} ({'meets' if value >= target else 'misses'} >= {target})"


PLAIN = f"p  plain loop, book's SRN, {DEFAULT_THREADS} thread(s)"
PLAIN_ONE_THREAD = "p1 plain loop, book's SRN, 1 thread"
PLAIN_BPTT = f"pb plain loop, gradexp's bptt SRN, {DEFAULT_THREADS} thread(s)"
PLAIN_LOOPS = (PLAIN, PLAIN_ONE_THREAD, PLAIN_BPTT)
# Issue 17's measurements (sigma_max, gradients through time, update ratios) off: the recording before them.
NEW_MEASUREMENTS_OFF = ["record.sigma_max=false", "record.time_grads=false", "record.update_ratio=false"]
RECORDING_OFF = ["record.norms=false", *NEW_MEASUREMENTS_OFF]
NORMS_ONLY = f"d  gradexp, {BACKENDS[0]}, norms only"
# b records everything (what a run records by default, spelled out); torch's RNN kernel gives no gradients
# through time (record.time_grads is a config error with the fused backend).
EVERYTHING = ("norms", "sigma_max", "time_grads", "update_ratio")


# The steps over which every side must record the same gradient norms.
SAME_STEPS = 2


def everything_on(backend: str) -> list[str]:
    return [f"record.{switch}={str(switch != 'time_grads' or backend != 'fused').lower()}" for switch in EVERYTHING]


def side_by_side(repeats: int, epochs: int, device: torch.device) -> None:
    common = [f"train.epochs={epochs}", f"train.device={device.type}"]
    variants: dict[str, Callable[[], Timing]] = {"a  article loop": lambda: time_article_loop(common, device)}
    for backend in BACKENDS:
        chosen = common + [f"model.backend={backend}"]
        variants[f"b  gradexp, {backend}"] = lambda chosen=chosen, backend=backend: time_gradexp(
            chosen + everything_on(backend))
        variants[f"c  gradexp, {backend}, recording off"] = lambda chosen=chosen: time_gradexp(chosen + RECORDING_OFF)
    variants[NORMS_ONLY] = lambda: time_gradexp(common + NEW_MEASUREMENTS_OFF)
    book = common + ["model.backend=loop"]
    variants[PLAIN] = lambda: time_plain_loop(book, device, DEFAULT_THREADS)
    if DEFAULT_THREADS != 1:
        variants[PLAIN_ONE_THREAD] = lambda: time_plain_loop(book, device, 1)
    variants[PLAIN_BPTT] = lambda: time_plain_loop(common + ["model.backend=bptt"], device, DEFAULT_THREADS)
    norms = {name: measure().norms for name, measure in variants.items()}  # warm-up round, not counted
    timings: dict[str, list[Timing]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, measure in variants.items():
            timings[name].append(measure())
    print(f"\n1. E1 explosion run ({epochs} epochs, {timings['a  article loop'][0].steps} steps): steps/s, "
          f"median of {repeats} interleaved rounds, by the wall clock and per CPU second; the loop only "
          f"(first step to last dev evaluation)")
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
    b = f"b  gradexp, {BACKENDS[0]}"
    for clock, speeds in (("wall", wall), ("CPU", cpu)):
        print(f"issue 17's measurements on ({BACKENDS[0]}, {clock}): b/d = "
              f"{verdict(speeds[b] / speeds[NORMS_ONLY], 1 / 1.1)} (at most 10% slower)")
    reference = norms["a  article loop"]
    # Only until the explosion: from step 3 on (the book's data explodes at once), lr 0.2 on a summed loss
    # multiplies float32 rounding (which differs between backends that add the same terms in another order)
    # about a hundredfold a step.
    same = all(np.allclose(norms[f"b  gradexp, {backend}"][column].to_numpy()[:SAME_STEPS],
                           reference[column].to_numpy()[:SAME_STEPS], rtol=1e-4)
               for backend in BACKENDS for column in reference.columns)
    print(f"a and b record the same gradient norms over the first {SAME_STEPS} steps (rtol 1e-4): "
          f"{'yes' if same else 'NO'}")
    same = all(np.allclose(norms[f"b  gradexp, {BACKENDS[0]}"][column].to_numpy()[:SAME_STEPS],
                           norms[PLAIN][column].to_numpy()[:SAME_STEPS], rtol=1e-4) for column in norms[PLAIN].columns)
    print(f"p (book's SRN) and b ({BACKENDS[0]}) record the same W, U, b norms over the first {SAME_STEPS} steps "
          f"(rtol 1e-4): "
          f"{'yes' if same else 'NO'}")
    whole_runs(timings)


def whole_runs(timings: dict[str, list[Timing]]) -> None:
    """The whole run against the plain loop, and where gradexp's run time goes."""
    backend = BACKENDS[0]
    b = f"b  gradexp, {backend}"
    run_seconds = {name: statistics.median(t.run_seconds for t in runs) for name, runs in timings.items()}
    loop_seconds = {name: statistics.median(t.wall_seconds for t in runs) for name, runs in timings.items()}
    print("\n1b. The whole run, what the user waits for (medians, ms): gradexp by summary.json's seconds, the plain "
          "loop up to its test evaluation, the article's loop by its loop")
    print_table(["variant", "whole run ms", "loop ms"],
                [[name, 1000 * run_seconds[name], 1000 * loop_seconds[name]] for name in timings])
    phases = {phase: statistics.median(t.phases.get(phase, 0.0) for t in timings[b]) for phase in RUN_PHASES.values()}
    steps_part = run_seconds[b] - sum(phases.values())
    steps = timings[b][0].steps
    print(f"\nWhere gradexp's run goes ({backend} backend, median of each part over the rounds):")
    print_table(["part", "ms", "share"],
                [["steps (the rest: forward, backward, norms, clip, update, record)", 1000 * steps_part,
                  f"{steps_part / run_seconds[b]:.0%}"]]
                + [[phase, 1000 * seconds, f"{seconds / run_seconds[b]:.0%}"] for phase, seconds in phases.items()]
                + [["summary seconds", 1000 * run_seconds[b], "100%"]])
    print(f"per step: gradexp's steps part {1000 * steps_part / steps:.3g} ms; "
          + ", ".join(f"{name[:2].strip()} {1000 * loop_seconds[name] / steps:.3g} ms"
                      for name in PLAIN_LOOPS if name in timings))
    plots = phases["plots (the run's PDFs)"]
    for plain in PLAIN_LOOPS:
        if plain not in timings:
            continue
        print(f"{plain[:2].strip()} / gradexp {backend} (summary seconds): "
              f"{verdict(run_seconds[plain] / run_seconds[b], 1.5)}; without the plots "
              f"{run_seconds[plain] / (run_seconds[b] - plots):.3g}; loops only "
              f"{loop_seconds[plain] / loop_seconds[b]:.3g}")


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
    """In a fresh process: (ms per step, peak memory in MiB added by the run) of gradexp with full recording (all
    but the gradients through time for the fused backend, which cannot give them)."""
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    # The seeded generator: the book's makes only lengths 5 to 35.
    overrides = ["data.generator=seeded", f"data.length={length}", f"model.hidden_size={hidden}",
                 f"model.backend={backend}", f"train.device={device_name}"]
    overrides += ["record.time_grads=false"] if backend == "fused" else []
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
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds, fewer scaling points, shorter sweeps (section 1 keeps E1's 250 steps)")
    parser.add_argument("--repeats", type=int, help="interleaved rounds of sections 1 and 4 [5; --quick: 3]")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads [1: the E1 matrices are too small to split, and on a shared 2-core "
                             "machine a second thread that waits for a busy core slows each step many times]")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--sections", default="1,2,3,4", help="which sections to run, e.g. 1,3")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sections = {int(part) for part in args.sections.split(",")}
    started = time.perf_counter()
    print(f"machine: {machine_description(device)}")
    if 1 in sections:
        # Always E1's 250 steps: the whole run's fixed costs weigh by the number of steps.
        side_by_side(args.repeats or (3 if args.quick else 5), 50, device)
    if 2 in sections:
        if args.quick:
            scaling((5, 20, 200), (32, 512), 2, device)
        else:
            scaling((5, 10, 20, 50, 100, 200), (32, 64, 128, 256, 512), 6, device)
    if 3 in sections:
        from bench_sweep import sweep_benchmark

        sweep_benchmark(quick=args.quick, device=device, print_table=print_table)
    if 4 in sections:
        from bench_overhead import overhead_benchmark

        # The 20-epoch sweep target (vectorized >= 2x one at a time, drawing included) is section 3's.
        overhead_benchmark(args.repeats or (3 if args.quick else 5), print_table)
    print(f"\nbenchmark took {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
