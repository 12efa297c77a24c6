"""The gated models' backends on E1 (configs/lstm_explode.yaml, gru_explode.yaml): steps per second of the loop
backend (the book's step-by-step recurrence, autograd; the default, the one that gives gradients through time)
and of torch's fused LSTM/GRU kernel, side by side in one process, interleaved round by round, one thread.

Run: python benchmarks/bench_gated.py [--repeats N] [--device cuda]        (also part of make bench)

Each variant is the whole training loop as gradexp runs it (the runner's clock: first step to the last dev
evaluation), with time_grads recorded for the loop backend (the default) and not for fused (it cannot), and
once more for the loop with record.time_grads off, so the recording and the backend's own cost are apart.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from gradexp.config.loading import load_config
from gradexp.runner import run
from bench_srn import LoopClock, print_table

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VARIANTS = {
    "loop (default: gradients through time recorded)": [],
    "loop, record.time_grads off": ["record.time_grads=false"],
    "fused (torch's kernel)": ["model.backend=fused", "record.time_grads=false"],
}


def steps_per_second(config: Path, overrides: list[str]) -> float:
    clock = LoopClock()
    with tempfile.TemporaryDirectory() as folder:
        result = run(load_config(config, overrides), folder, clock)
    return result.summary.steps / clock.wall_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds [3]")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    options = parser.parse_args()
    torch.set_num_threads(1)
    variants = {name: [*overrides, f"train.device={options.device}"] for name, overrides in VARIANTS.items()}
    print(f"device: {torch.cuda.get_device_name() if options.device == 'cuda' else 'cpu, one thread'}")
    for model in ("lstm", "gru"):
        config = CONFIGS / f"{model}_explode.yaml"
        for overrides in variants.values():  # warm-up round, not counted
            steps_per_second(config, overrides)
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(options.repeats):
            for name, overrides in variants.items():
                rates[name].append(steps_per_second(config, overrides))
        medians = {name: statistics.median(values) for name, values in rates.items()}
        print(f"\n{model}_explode.yaml (250 steps), steps/s by the wall clock, median of {options.repeats} rounds")
        loop = medians["loop, record.time_grads off"]
        print_table(["backend", "steps/s", "against the loop without recording"],
                    [[name, medians[name], f"{medians[name] / loop:.2f}x"] for name in VARIANTS])


if __name__ == "__main__":
    main()
