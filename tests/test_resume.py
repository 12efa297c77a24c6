"""Interrupted, killed and resumed runs finish with the bytes an uninterrupted run writes.

The subprocess tests stop a real `gradexp run` with SIGINT, SIGTERM and SIGKILL once metrics.csv
has rows, resume it with `gradexp run --resume`, and compare metrics.csv and eval.csv byte for byte
with the same config run in one go. The in-process tests send the signal to the test process itself
at a chosen step, to cover every kind of state a resume point carries (optimizer moments, adaptive
clip statistics, schedules, early stopping, data drawn afresh each epoch, batch-norm statistics).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from gradexp.config.loading import load_config
from gradexp.errors import DataError
from gradexp.recording.layout import RESUME_POINT
from gradexp.resume import read_resume_point
from gradexp import runner
from gradexp.runner import SilentReporter, resume, run
from tests.conftest import TINY_SRN, merged

# 300 examples / 64 = 5 steps an epoch, 30 epochs: 150 steps, long enough to be stopped in the middle.
LONG_SRN = merged(TINY_SRN, {
    "optimizer": {"momentum": 0.9},
    "clip": {"mode": "zclip", "warmup_steps": 5},
    "schedule": {"name": "step", "every_epochs": 3, "gamma": 0.5},
    # a resume point at every flush, so a kill -9 finds one past the start
    "train": {"epochs": 30, "eval_every": 7, "flush_every": 4, "patience": 1000, "resume_point_seconds": 0},
})
TOTAL_STEPS = 150
# One thread: the same arithmetic in every process, and no fight for the cores with other tests.
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
CLI = [sys.executable, "-c", "from gradexp.cli import main; main()"]
# Generous: the budget for stopping (finish the step, flush, save, plot, summary) on a busy machine.
EXIT_WITHIN_SECONDS = 30


def gradexp(*args: Any, **popen: Any) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=SUBPROCESS_ENV, **popen)


def finished(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def only_run(out: Path) -> Path:
    (run_dir,) = out.iterdir()
    return run_dir


def rows_written(out: Path) -> int:
    metrics = list(out.glob("*/metrics.csv"))
    return metrics[0].read_bytes().count(b"\n") - 1 if metrics else 0


def start_and_wait_for_rows(config: Path, out: Path, rows: int = 30) -> subprocess.Popen:
    process = gradexp("run", config, "--out", out)
    deadline = time.monotonic() + 120
    while rows_written(out) < rows:
        assert process.poll() is None, finished(process)
        assert time.monotonic() < deadline, "the run wrote no rows in time"
        time.sleep(0.02)
    return process


@pytest.fixture(scope="module")
def long_config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "long.yaml"
    path.write_text(yaml.safe_dump(LONG_SRN, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def uninterrupted(long_config: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    code, stdout, stderr = finished(gradexp("run", long_config, "--out", out))
    assert code == 0, stderr
    return only_run(out)


def assert_same_run(resumed: Path, reference: Path) -> None:
    for name in ("metrics.csv", "eval.csv"):
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
    ours, theirs = (json.loads((folder / "summary.json").read_text()) for folder in (resumed, reference))
    assert ours["status"] == "completed" and ours["resumed_at_steps"]
    for varying in ("seconds", "resumed_at_steps"):
        ours.pop(varying), theirs.pop(varying)
    assert ours == theirs
    assert not (resumed / RESUME_POINT).exists()
    best, reference_best = (torch.load(folder / "best.pt") for folder in (resumed, reference))
    assert best["step"] == reference_best["step"]
    assert all(torch.equal(best["model"][name], tensor) for name, tensor in reference_best["model"].items())


@pytest.mark.subprocess
@pytest.mark.parametrize("stop, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_saves_and_resume_is_byte_identical(long_config, uninterrupted, tmp_path, stop, exit_code) -> None:
    out = tmp_path / "runs"
    process = start_and_wait_for_rows(long_config, out)
    sent = time.monotonic()
    process.send_signal(stop)
    code, stdout, stderr = finished(process)
    seconds_to_exit = time.monotonic() - sent
    assert code == exit_code, stderr
    assert seconds_to_exit < EXIT_WITHIN_SECONDS
    run_dir = only_run(out)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["interrupted_by"] == stop.name
    assert 30 <= summary["steps"] < TOTAL_STEPS and summary["test"] is None
    assert f"resume with: gradexp run --resume {run_dir}" in stdout and "Traceback" not in stderr
    # every step that ran is on disk, and the resume point is at the last of them
    assert rows_written(out) == summary["steps"] == read_resume_point(run_dir)["step"]
    for plot in ("grad_norms.pdf", "loss.pdf"):
        assert (run_dir / plot).read_bytes().startswith(b"%PDF")

    code, stdout, stderr = finished(gradexp("run", "--resume", run_dir))
    assert code == 0, stderr
    assert "status: completed" in stdout
    assert json.loads((run_dir / "summary.json").read_text())["resumed_at_steps"] == [summary["steps"]]
    assert_same_run(run_dir, uninterrupted)


@pytest.mark.subprocess
def test_kill_9_leaves_whole_rows_and_resumes_from_the_last_checkpoint(long_config, uninterrupted, tmp_path) -> None:
    out = tmp_path / "runs"
    process = start_and_wait_for_rows(long_config, out)
    process.kill()
    # Its figures' worker process goes with it: it held the run's stdout, which would otherwise never close.
    assert finished(process, timeout=30)[0] == -signal.SIGKILL
    run_dir = only_run(out)
    assert not (run_dir / "summary.json").exists()
    header, *rows = (run_dir / "metrics.csv").read_text().split("\n")
    assert rows.pop() == ""  # the file ends with a whole row
    assert rows and all(row.count(",") == header.count(",") for row in rows)
    point = read_resume_point(run_dir)
    assert 0 < point["step"] <= len(rows)
    # A crash between a flush and the next resume point leaves rows past the point, maybe torn: resume drops them.
    with (run_dir / "metrics.csv").open("a") as metrics:
        metrics.write(rows[-1] + "\n" + rows[-1][:17])
    with (run_dir / "eval.csv").open("a") as evaluations:
        evaluations.write(f"{TOTAL_STEPS},30,dev,0.5,0.5\n")
    # and the temporary file of a checkpoint write it never renamed
    (run_dir / f".{RESUME_POINT}.unfinished.tmp").write_bytes(b"half a checkpoint")

    code, stdout, stderr = finished(gradexp("run", "--resume", run_dir))
    assert code == 0, stderr
    assert json.loads((run_dir / "summary.json").read_text())["resumed_at_steps"] == [point["step"]]
    assert not list(run_dir.glob(".*.tmp"))
    assert_same_run(run_dir, uninterrupted)


@pytest.mark.subprocess
def test_a_run_killed_before_its_first_resume_point_trains_again_from_the_start(long_config, uninterrupted,
                                                                                tmp_path) -> None:
    """No resume point is written before `train.resume_point_seconds` have passed (here an hour), so a kill -9
    finds none; resume trains again from step 0 in the same folder, with the same result."""
    config = tmp_path / "long.yaml"
    config.write_text(long_config.read_text().replace("resume_point_seconds: 0", "resume_point_seconds: 3600"))
    out = tmp_path / "runs"
    process = start_and_wait_for_rows(config, out)
    process.kill()
    assert finished(process)[0] == -signal.SIGKILL
    run_dir = only_run(out)
    assert not (run_dir / RESUME_POINT).exists() and read_resume_point(run_dir) is None
    code, stdout, stderr = finished(gradexp("run", "--resume", run_dir))
    assert code == 0, stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_at_steps"] == [0] and summary["name"] == "long"
    assert_same_run(run_dir, uninterrupted)


def test_a_folder_without_config_or_metrics_is_not_resumed(write_config, tmp_path: Path) -> None:
    stopped = run(load_config(write_config(train={"epochs": 4})), tmp_path / "runs", SignalAtSteps({12}))
    (stopped.run_dir / RESUME_POINT).unlink()
    (stopped.run_dir / "metrics.csv").unlink()
    with pytest.raises(DataError, match="holds no last.pt: not a gradexp run folder"):
        resume(stopped.run_dir)


# In process: the same guarantees for every kind of state, stopped at exact steps.

class SignalAtSteps(SilentReporter):
    """Sends `stop` to this very process when the run reaches any of `steps` (as Ctrl-C would)."""

    def __init__(self, steps: set[int], stop: signal.Signals = signal.SIGINT) -> None:
        self.steps = steps
        self.stop = stop

    def step_done(self, step: int) -> None:
        if step in self.steps:
            os.kill(os.getpid(), self.stop)


STATEFUL_CONFIGS = {
    "srn, sgd momentum, zclip, step decay, shuffled": LONG_SRN,
    "srn, adam, autoclip, plateau decay, early stopping": merged(TINY_SRN, {
        "optimizer": {"name": "adam", "lr": 0.05},
        "clip": {"mode": "autoclip", "percentile": 25},
        "schedule": {"name": "plateau", "monitor": "metric", "factor": 0.5, "patience": 0},
        "train": {"epochs": 40, "eval_every": 5, "flush_every": 6, "patience": 4},
    }),
    "mlp with batch norm on data drawn afresh every epoch, rmsprop, global norm": {
        "data": {"name": "random", "samples": 48, "n_features": 6, "eval_samples": 100},
        "model": {"name": "mlp", "hidden": [12, 12], "batch_norm": True},
        "optimizer": {"name": "rmsprop", "lr": 0.01, "momentum": 0.5},
        "loss": {"name": "mse"},
        "clip": {"mode": "global_norm", "threshold": 0.5},
        "train": {"epochs": 30, "batch_size": 16, "eval_every": 10, "flush_every": 7, "keep": "last"},
        # a resumed session's first update ratios are taken against the weights it resumed from
        "record": {"update_ratio": True},
    },
}


@pytest.mark.parametrize("config", STATEFUL_CONFIGS.values(), ids=STATEFUL_CONFIGS.keys())
def test_resume_restores_every_kind_of_state(config: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "stateful.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    reference = run(load_config(path), tmp_path / "reference").run_dir
    # Stopped twice: in the middle of an epoch and between flushes, then again after the first resume.
    first = run(load_config(path), tmp_path / "stopped", SignalAtSteps({13}))
    assert first.summary.status == "interrupted" and first.summary.steps == 13
    second = resume(first.run_dir, SignalAtSteps({31}, signal.SIGTERM))
    assert second.summary.status == "interrupted" and second.summary.steps == 31
    assert second.summary.interrupted_by == "SIGTERM"
    final = resume(first.run_dir)
    assert final.summary.resumed_at_steps == [13, 31]
    assert_same_run(first.run_dir, reference)


def test_signal_handlers_are_restored_after_a_run(write_config, tmp_path: Path) -> None:
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    run(load_config(write_config()), tmp_path / "runs", SignalAtSteps({2}))
    assert {number: signal.getsignal(number) for number in before} == before


def test_resume_refuses_a_metrics_file_shorter_than_its_checkpoint(write_config, tmp_path: Path) -> None:
    stopped = run(load_config(write_config(train={"epochs": 4})), tmp_path / "runs", SignalAtSteps({12}))
    metrics = stopped.run_dir / "metrics.csv"
    metrics.write_bytes(metrics.read_bytes()[:-40])
    with pytest.raises(DataError, match="fewer than the [0-9]+ its checkpoint recorded"):
        resume(stopped.run_dir)


@pytest.mark.parametrize("seconds, expected_steps", [(0, [3, 4, 7, 8, 10]), (3600, [])])
def test_resume_points_are_saved_by_the_clock(write_config, tmp_path: Path, monkeypatch, seconds: float,
                                              expected_steps: list[int]) -> None:
    """0 s: one at every flush (steps 3 and 7 by flush_every 3, 4 and 8 by evaluations, 10 at the end); an hour:
    none (a run killed before its first trains again from the start). Either way best.pt ends as the best
    evaluation's model."""
    saved: list[int] = []
    save_checkpoint = runner.save_checkpoint

    def spy(path: Path, state: dict[str, Any]) -> None:
        if path.name == RESUME_POINT:
            saved.append(state["step"])
        save_checkpoint(path, state)

    monkeypatch.setattr(runner, "save_checkpoint", spy)
    result = run(load_config(write_config(train={"resume_point_seconds": seconds})), tmp_path / "runs")
    assert saved == expected_steps
    best = torch.load(result.run_dir / "best.pt")
    assert best["step"] == result.summary.best_dev["step"]
    assert best["dev"]["accuracy"] == result.summary.best_dev["accuracy"]
