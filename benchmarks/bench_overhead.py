"""What the user waits for: gradexp's commands, each a fresh process, against `python -c "import torch"` (issue 16).

Run: python benchmarks/bench_overhead.py [--quick]   (also section 4 of bench_srn.py and `make bench`)

Each command is the real CLI (the venv's `gradexp` script beside this Python, else `python -c "from
gradexp.cli import main; main()"`), started afresh from the repository root, its output captured:
`--help`; `plot RUN/metrics.csv -o NEW.pdf`; `compare RUN1 RUN2`; `validate configs/srn_clip.yaml`;
a 25-step `run configs/srn_clip.yaml --set train.epochs=5`; and a 64-point sweep of that run
(8 learning rates x 8 clip thresholds) with `--backend local` (one at a time) and `--backend
vectorized`. `python -c "import torch"` is timed in the same rounds, the commands interleaved with
it round by round; the figures are medians of the rounds. Every command trains with the config's
train.threads (1). RUN1 and RUN2 (the 25-step run, clipped and not) are made once before the rounds.

Targets (issue 16): plot and compare of two runs below 0.75x the torch import; the 25-step run below
2.6x; the 64-point short sweep below 4x the 25-step run. And, with --long-sweep (the default
without --quick): a 64-point sweep of 20-epoch runs trained with --backend vectorized at least 2x as
fast as one at a time by the wall clock, drawing included (benchmarks/bench_sweep.py's sweeps,
in this process through gradexp.sweep.run_sweep).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/srn_clip.yaml"
SHORT_RUN = ["--set", "train.epochs=5"]
GRID = ["--grid", "optimizer.lr=0.01,0.02,0.05,0.1,0.2,0.3,0.5,1.0",
        "--grid", "clip.threshold=0.5,1,2,5,10,20,50,none"]
TORCH = "import torch"


def gradexp_command() -> list[str]:
    """The installed CLI: the console script beside this interpreter, else its entry point called through -c."""
    script = Path(sys.executable).with_name("gradexp")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gradexp.cli import main; main()"]


@dataclass(frozen=True)
class Run:
    wall_seconds: float
    cpu_seconds: float  # the process's and its children's user + system time


def time_process(argv: list[str]) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    return Run(wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)


def new_run(gradexp: list[str], out: Path, overrides: Sequence[str] = ()) -> Path:
    """A 25-step run folder of configs/srn_clip.yaml under `out` (made for plot and compare to read)."""
    time_process(gradexp + ["run", CONFIG, *SHORT_RUN, *overrides, "--out", str(out)])
    (folder,) = [path for path in out.iterdir() if path.is_dir()]
    return folder


def commands(gradexp: list[str], run1: Path, run2: Path) -> dict[str, Callable[[Path], list[str]]]:
    """Each command's argv, given a fresh folder for whatever it writes."""
    return {
        "python -c 'import torch'": lambda out: [sys.executable, "-c", TORCH],
        "gradexp --help": lambda out: gradexp + ["--help"],
        "plot RUN/metrics.csv -o NEW.pdf": lambda out: gradexp + ["plot", str(run1 / "metrics.csv"),
                                                                   "-o", str(out / "replot.pdf")],
        "compare RUN1 RUN2": lambda out: gradexp + ["compare", str(run1), str(run2), "--out", str(out / "compare")],
        "validate srn_clip.yaml": lambda out: gradexp + ["validate", CONFIG],
        "run, 25 steps": lambda out: gradexp + ["run", CONFIG, *SHORT_RUN, "--out", str(out)],
        "sweep 64 x 25 steps, local": lambda out: gradexp + ["sweep", CONFIG, *GRID, *SHORT_RUN, "--backend", "local",
                                                             "--out", str(out)],
        "sweep 64 x 25 steps, vectorized": lambda out: gradexp + ["sweep", CONFIG, *GRID, *SHORT_RUN,
                                                                  "--backend", "vectorized", "--out", str(out)],
    }


def meets(value: float, below: float) -> str:
    return f"{'meets' if value < below else 'misses'} < {below}"


def overhead_benchmark(rounds: int, print_table: Callable[[Sequence[str], Sequence], None],
                       long_sweep: bool = False) -> None:
    gradexp = gradexp_command()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        run1 = new_run(gradexp, scratch / "run1")
        run2 = new_run(gradexp, scratch / "run2", ["--set", "clip.threshold=none"])
        argvs = commands(gradexp, run1, run2)
        runs: dict[str, list[Run]] = {name: [] for name in argvs}
        for round_number in range(rounds):
            for name, argv in argvs.items():
                out = scratch / f"round{round_number}"
                out.mkdir()
                runs[name].append(time_process(argv(out)))
                shutil.rmtree(out)
    wall = {name: statistics.median(run.wall_seconds for run in timed) for name, timed in runs.items()}
    cpu = {name: statistics.median(run.cpu_seconds for run in timed) for name, timed in runs.items()}
    torch_name, run_name = "python -c 'import torch'", "run, 25 steps"
    print(f"\n4. Commands, each a fresh process of the installed CLI, against python -c 'import torch': medians of "
          f"{rounds} interleaved rounds; {os.cpu_count()} cores, train.threads 1")
    print_table(["command", "wall s", "min", "max", "CPU s", "x import torch", "x 25-step run"],
                [[name, wall[name], min(r.wall_seconds for r in runs[name]), max(r.wall_seconds for r in runs[name]),
                  cpu[name], wall[name] / wall[torch_name], wall[name] / wall[run_name]] for name in runs])
    print()
    for name, limit in (("plot RUN/metrics.csv -o NEW.pdf", 0.75), ("compare RUN1 RUN2", 0.75), (run_name, 2.6)):
        ratio = wall[name] / wall[torch_name]
        print(f"{name} / import torch: {ratio:.3g} ({meets(ratio, limit)})")
    for name in ("sweep 64 x 25 steps, local", "sweep 64 x 25 steps, vectorized"):
        ratio = wall[name] / wall[run_name]
        print(f"{name} / run, 25 steps: {ratio:.3g} ({meets(ratio, 4)})")
    if long_sweep:
        long_sweep_benchmark(print_table)


def long_sweep_benchmark(print_table: Callable[[Sequence[str], Sequence], None]) -> None:
    """The 64-point 20-epoch sweep both ways, by bench_sweep.py's timing (wall clock, drawing included)."""
    import torch
    from bench_sweep import time_sweep, warm_up

    device = torch.device("cpu")
    warm_up(device)
    sweeps = {"one at a time": time_sweep(20, device, vectorize=False),
              "--backend vectorized": time_sweep(20, device, vectorize=True)}
    print("\n64-point sweep of 20-epoch runs (bench_sweep.py), wall clock with drawing included")
    print_table(["sweep", "wall s", "wall s without drawing"],
                [[name, timing.wall_seconds, timing.wall_seconds_without_drawing] for name, timing in sweeps.items()])
    speed_up = sweeps["one at a time"].wall_seconds / sweeps["--backend vectorized"].wall_seconds
    print(f"vectorized against one at a time: {speed_up:.3g}x ({'meets' if speed_up >= 2 else 'misses'} >= 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 5, and no --long-sweep")
    parser.add_argument("--rounds", type=int, help="interleaved rounds [5; --quick: 3]")
    parser.add_argument("--long-sweep", action=argparse.BooleanOptionalAction,
                        help="also time the 64-point 20-epoch sweep both ways (about 2 minutes) [on without --quick]")
    args = parser.parse_args()
    import torch
    from bench_srn import machine_description, print_table

    torch.set_num_threads(1)
    print(f"machine: {machine_description(torch.device('cpu'))}")
    long_sweep = not args.quick if args.long_sweep is None else args.long_sweep
    overhead_benchmark(args.rounds or (3 if args.quick else 5), print_table, long_sweep)


if __name__ == "__main__":
    main()
