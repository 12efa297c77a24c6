"""`gradexp sweep --backend ray` against a real local Ray instance (2 CPUs, started once for the module).

Every test compares the Ray backend with the local one on the same plan: the run folders, sweep.csv
and the compare table must be the same, apart from wall-clock times and the timestamps in folder names.
Faults are real: a worker process is killed with SIGKILL mid-run, the driver gets a real SIGINT.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner

from gradexp.cli import main
from gradexp.compare import build_table, gather_runs
from gradexp.compare.table import table_csv
from gradexp.config.loading import load_config
from gradexp.errors import OptionError
from gradexp.recording.layout import RESUME_POINT
from gradexp.threads import torch_threads
from gradexp.sweep import plan_sweep, run_sweep
from gradexp.sweep.backends.local import LocalBackend
from gradexp.sweep.outcomes import FAILED, INTERRUPTED, NOT_RUN
from gradexp.sweep.backends.ray import (SCRATCH_PREFIX, RayBackend, StopFlag, check_reachable, dashboard_link, ray_session,
                                 train_and_pack)
from tests.conftest import CONFIGS
from tests.sweep.test_sweep import assert_one_diverged_one_completed

# Every test here is about the Ray backend; most start or use a real Ray instance.
pytestmark = pytest.mark.ray

# Columns that hold wall-clock time, or a run folder's name or path (stamped with the time the run started).
CLOCK_COLUMNS = ("run", "path", "seconds")


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'gradexp[ray]' (make test does)")
    # address="local": a new instance for the tests, even where `ray start` runs a cluster on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def sweep_csv(folder: Path) -> pd.DataFrame:
    table = pd.read_csv(folder / "sweep.csv", keep_default_na=False, na_values=[""])
    return table.drop(columns=[column for column in CLOCK_COLUMNS if column in table])


def compare_csv(folder: Path) -> pd.DataFrame:
    table = pd.read_csv(io.StringIO(table_csv(build_table(gather_runs([folder]).runs))))
    return table.drop(columns=[column for column in CLOCK_COLUMNS if column in table])


def assert_same_runs(local: Path, remote: Path) -> None:
    """The same run folders, file for file; logs and config byte for byte; summaries equal but for the clock."""
    local_runs, remote_runs = sorted(local.glob("[0-9]*")), sorted(remote.glob("[0-9]*"))
    assert [path.name[:-16] for path in local_runs] == [path.name[:-16] for path in remote_runs]  # -YYYYmmdd-HHMMSS
    for local_run, remote_run in zip(local_runs, remote_runs):
        assert sorted(p.name for p in local_run.iterdir()) == sorted(p.name for p in remote_run.iterdir())
        for name in ("metrics.csv", "eval.csv", "config.yaml"):
            if (local_run / name).exists():
                assert (local_run / name).read_bytes() == (remote_run / name).read_bytes(), (remote_run, name)
        if (local_run / "summary.json").exists():
            summaries = [json.loads((run / "summary.json").read_text()) for run in (local_run, remote_run)]
            for summary in summaries:
                summary.pop("seconds")
            assert summaries[0] == summaries[1]
    pd.testing.assert_frame_equal(sweep_csv(local), sweep_csv(remote))


def test_a_sweep_through_ray_writes_what_a_local_sweep_writes(ray_cluster, write_config, tmp_path: Path) -> None:
    path = write_config(clip={"mode": "norm", "threshold": 0.3})
    plan = plan_sweep(path, ["train.epochs=1"], ["optimizer.lr=0.05,0.5", "clip.threshold=0.3,none"], seeds=1)
    local = run_sweep(plan, tmp_path / "local", LocalBackend())
    heard = []
    remote = run_sweep(plan, tmp_path / "ray", RayBackend(retries=2), finished=heard.append)
    assert sorted(outcome.point.index for outcome in heard) == [0, 1, 2, 3]
    assert [outcome.status for outcome in remote.outcomes] == ["completed"] * 4
    assert all(outcome.run_dir.parent == remote.folder for outcome in remote.outcomes)
    assert_same_runs(local.folder, remote.folder)
    pd.testing.assert_frame_equal(compare_csv(local.folder), compare_csv(remote.folder))
    assert (remote.folder / "sweep.pdf").read_bytes().startswith(b"%PDF")
    settings = yaml.safe_load((remote.folder / "sweep.yaml").read_text())
    assert settings["backend"] == "ray" and settings["retries"] == 2 and settings["cpus_per_run"] == 1


def test_bad_values_are_reported_and_the_other_points_finish(ray_cluster, write_config, tmp_path: Path) -> None:
    """-1 is refused before any run; 1e300 overflows inside its run on the worker; both as with the local backend."""
    plan = plan_sweep(write_config(), ["train.epochs=1"], ["optimizer.lr=0.05,-1,1.0e+300"], seeds=1)
    local = run_sweep(plan, tmp_path / "local", LocalBackend())
    remote = run_sweep(plan, tmp_path / "ray", RayBackend())
    completed, refused, crashed = remote.outcomes
    assert completed.status == "completed"
    assert refused.status == FAILED and "optimizer.lr (from --grid): expected a value > 0" in refused.error
    assert crashed.status == FAILED and "overflow" in crashed.error
    # The crashed run's folder came back from the worker with what it wrote before the crash.
    assert crashed.run_dir is not None and (crashed.run_dir / "config.yaml").exists()
    assert_same_runs(local.folder, remote.folder)


def file_held_open(pattern: str) -> Optional[tuple[int, Path]]:
    """(pid, path) of a process holding open a file that matches `pattern`; a run holds its metrics.csv open."""
    for link in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            target = Path(os.readlink(link))
        except OSError:  # the process or the descriptor went away meanwhile
            continue
        if target.match(pattern):
            return int(link.parts[2]), target
    return None


def training_rows(pattern: str) -> int:
    """Rows in the metrics.csv (matching `pattern`) that a worker is writing now; 0 when none is open."""
    held = file_held_open(pattern)
    try:
        return held[1].read_text().count("\n") - 1 if held else 0
    except OSError:
        return 0


def kill_worker_once(point_name: str) -> tuple[threading.Thread, dict]:
    """Start a thread that SIGKILLs the Ray worker training `point_name` once its metrics.csv holds rows.

    The runs it watches train 1,000 steps (a second or two), so the kill lands while the run still trains.
    """
    pattern = f"{SCRATCH_PREFIX}*/{point_name}-*/metrics.csv"
    killed: dict = {}

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            held = file_held_open(pattern)
            rows = training_rows(pattern)
            if held is not None and rows > 0:
                os.kill(held[0], signal.SIGKILL)
                killed.update(pid=held[0], rows=rows, scratch=held[1].parents[1])
                return
            time.sleep(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, killed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker's open files in /proc")
def test_a_worker_killed_mid_run_is_retried_and_its_run_is_whole(ray_cluster, write_config,
                                                                  tmp_path: Path) -> None:
    plan = plan_sweep(write_config(), ["train.epochs=200", "train.flush_every=2", "train.eval_every=1000"],
                      ["optimizer.lr=0.05"], seeds=1)
    watcher, killed = kill_worker_once("000-lr0.05-seed0")
    remote = run_sweep(plan, tmp_path / "ray", RayBackend(retries=1))
    watcher.join()
    assert killed, "the watcher never saw the point train"
    shutil.rmtree(killed["scratch"])  # the killed attempt's temporary folder: nothing was left to remove it
    steps = remote.outcomes[0].run_dir.joinpath("metrics.csv").read_text().count("\n") - 1
    assert 0 < killed["rows"] < steps  # killed mid-run
    assert remote.outcomes[0].status == "completed"
    assert_same_runs(run_sweep(plan, tmp_path / "local", LocalBackend()).folder, remote.folder)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker's open files in /proc")
def test_a_point_whose_worker_dies_every_time_fails_and_the_others_finish(ray_cluster, write_config,
                                                                          tmp_path: Path) -> None:
    plan = plan_sweep(write_config(), ["train.epochs=200", "train.flush_every=2", "train.eval_every=1000"],
                      ["optimizer.lr=0.05,0.1"], seeds=1)
    watcher, killed = kill_worker_once("001-lr0.1-seed0")
    remote = run_sweep(plan, tmp_path, RayBackend(retries=0))
    watcher.join()
    assert killed
    shutil.rmtree(killed["scratch"])
    survivor, lost = remote.outcomes
    assert survivor.status == "completed"
    assert lost.status == FAILED and lost.run_dir is None
    assert lost.error.startswith("WorkerCrashedError after 0 retries: ")
    row = pd.read_csv(remote.folder / "sweep.csv").iloc[1]
    assert row["status"] == FAILED and row["error"] == lost.error


def send_sigint_when(ready: Callable[[], bool]) -> threading.Thread:
    def watch() -> None:
        deadline = time.monotonic() + 120
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_stop_request_cancels_the_outstanding_points(ray_cluster, write_config, tmp_path: Path) -> None:
    """SIGINT to the driver: the finished run stays complete, training ones stop after a step, queued ones never run.

    Point 0 is short, points 1-3 (150,000 steps) would take minutes even at 1 ms a step; two CPUs run two points at once, so when point 0
    is back (its run folder written here) and another point trains, at least one waits.
    """
    plan = plan_sweep(write_config(), ["train.flush_every=2", "train.eval_every=1000"],
                      ["train.epochs=1,30000,30001,30002"], seeds=1)
    sweeps = tmp_path / "ray"
    training_at_signal: set[int] = set()

    def ready() -> bool:
        training_at_signal.update(index for index in (1, 2, 3)
                                  if training_rows(f"{SCRATCH_PREFIX}*/{index:03d}-*/metrics.csv") > 0)
        return any(sweeps.glob("sweep-*/000-*/summary.json")) and bool(training_at_signal)

    sender = send_sigint_when(ready)
    remote = run_sweep(plan, sweeps, RayBackend())
    sender.join()
    short, *long_points = remote.outcomes
    short_summary = json.loads((short.run_dir / "summary.json").read_text())
    assert short.status == short_summary["status"] == "completed"
    stopped = {outcome.point.index for outcome in long_points if outcome.status == INTERRUPTED}
    never = {outcome.point.index for outcome in long_points if outcome.status == NOT_RUN}
    assert stopped | never == {1, 2, 3} and training_at_signal <= stopped and never
    for outcome in long_points:
        if outcome.status == INTERRUPTED:  # stopped after a step, resumable
            summary = json.loads((outcome.run_dir / "summary.json").read_text())
            assert summary["status"] == INTERRUPTED and 0 < summary["steps"] < 30000 * short_summary["steps"]
            assert (outcome.run_dir / RESUME_POINT).exists()
        else:
            assert outcome.run_dir is None
    assert list(pd.read_csv(remote.folder / "sweep.csv")["status"]) == [outcome.status for outcome in remote.outcomes]
    assert sorted(path.name[:3] for path in remote.folder.glob("[0-9]*")) == sorted(
        f"{index:03d}" for index in {0} | stopped)


def test_a_task_that_starts_after_the_stop_flag_is_raised_does_not_train(ray_cluster, write_config) -> None:
    # What a cancel can miss (a task handed to a worker still starting) must still not train.
    flag = ray_cluster.remote(num_cpus=0)(StopFlag).remote()
    ray_cluster.get(flag.raise_flag.remote())
    task = ray_cluster.remote(max_calls=1)(train_and_pack)
    packed = ray_cluster.get(task.remote(load_config(write_config()), 1, flag))
    assert (packed.status, packed.folder, packed.files) == (NOT_RUN, None, {})
    ray_cluster.kill(flag)


def test_a_task_hears_a_cancel_even_where_its_worker_ignores_sigint(write_config) -> None:
    """A Ray instance started by a driver that ignores SIGINT (`gradexp sweep ... &`) hands the ignoring down to
    its workers; a task takes SIGINT (how a cancel arrives) back, so a cancel before training is not dropped."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with torch_threads(torch.get_num_threads()):  # puts back the thread count the task sets
            train_and_pack(load_config(write_config(), ["train.epochs=1"]), 1)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_cli_sweep_through_ray_counts_the_runs_and_prints_the_comparison(ray_cluster, write_config,
                                                                         tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sweep", str(write_config()), "--grid", "optimizer.lr=0.05,-1",
                                       "--set", "train.epochs=1", "--out", str(tmp_path), "--backend", "ray",
                                       "--cpus-per-run", "1", "--retries", "1"])
    assert result.exit_code == 0, result.output
    with ray_session() as session:  # the connection this process has: the test's cluster
        assert f"running on the Ray cluster at {session.address}" in result.output
    # No progress bar where stderr is not a terminal (its bare label would be a stray line in a log) ...
    assert "runs finished" not in result.output
    # ... the lines count the runs as they finish: the point no config fits first, before any trains.
    assert "[1/2] finished: 001-lr-1-seed0: failed" in result.output
    assert "[2/2] finished: 000-lr0.05-seed0: completed, test accuracy" in result.output
    assert "explode" in result.output  # the compare table's header
    assert len(list(tmp_path.glob("sweep-tiny-*/*/summary.json"))) == 1
    settings = yaml.safe_load(next(tmp_path.glob("sweep-tiny-*/sweep.yaml")).read_text())
    assert (settings["backend"], settings["cpus_per_run"], settings["retries"]) == ("ray", 1, 1)


def test_cli_sweep_of_a_shipped_config_through_ray_is_the_local_sweep(ray_cluster, tmp_path: Path) -> None:
    # E1's own shapes: torch splits their float32 sums among its threads, so the two backends agree only
    # because each run trains with --cpus-per-run threads on both (here the default, 1).
    arguments = ["sweep", str(CONFIGS / "srn_clip.yaml"), "--grid", "optimizer.lr=0.05,0.2", "--set", "train.epochs=1"]
    for backend in ("local", "ray"):
        result = CliRunner().invoke(main, [*arguments, "--backend", backend, "--out", str(tmp_path / backend)])
        assert result.exit_code == 0, result.output
    assert_same_runs(next(tmp_path.glob("local/sweep-*")), next(tmp_path.glob("ray/sweep-*")))


@pytest.mark.parametrize("arguments,message", [
    (["--address", "auto"], "error: --address: only used with --backend ray"),
    (["--retries", "3"], "error: --retries: only used with --backend ray"),
    (["--backend", "ray", "--jobs", "2"], "error: --jobs: only used with --backend local"),
    (["--vectorize", "--cpus-per-run", "2"], "error: --cpus-per-run: only used with --backend local or ray"),
    (["--vectorize", "--backend", "ray"], "error: --vectorize: means --backend vectorized; it cannot go with --backend ray"),
])
def test_cli_ray_options_that_do_not_fit_are_one_line_errors(write_config, tmp_path: Path, arguments,
                                                             message) -> None:
    result = CliRunner().invoke(main, ["sweep", str(write_config()), "--grid", "optimizer.lr=0.05,0.1",
                                       "--out", str(tmp_path), *arguments])
    assert result.exit_code == 2
    assert result.output.strip() == message or result.output.strip().startswith(message)
    assert len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("sweep-*"))


def test_without_ray_the_ray_backend_says_how_to_install_it(write_config, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # how Python marks a module that cannot be imported
    result = CliRunner().invoke(main, ["sweep", str(write_config()), "--grid", "optimizer.lr=0.05,0.1",
                                       "--out", str(tmp_path), "--backend", "ray"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: --backend ray: Ray is not installed; install gradexp[ray] (pip install 'gradexp[ray]')"]
    assert not list(tmp_path.glob("sweep-*"))


def test_ray_is_imported_only_for_the_ray_backend() -> None:
    code = "import sys, gradexp.cli, gradexp.sweep; print('ray' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"


def test_an_address_where_nothing_answers_is_a_one_line_error_at_once() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(OptionError, match=f"cannot connect to the Ray cluster at 127.0.0.1:{port}: nothing answers"):
        check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(OptionError, match="nothing answers"):
        check_reachable(f"ray://127.0.0.1:{port}")
    assert time.monotonic() - started < 5  # ray.init would retry for ever
    check_reachable("auto")  # Ray's own names are left to Ray


@pytest.mark.parametrize("given,shown", [("", None), (None, None), ("127.0.0.1:8265", "http://127.0.0.1:8265"),
                                         ("https://ray.example.org", "https://ray.example.org")])
def test_the_dashboard_is_shown_as_a_link_when_ray_runs_one(given, shown) -> None:
    assert dashboard_link(given) == shown


def test_a_point_that_diverges_beside_one_that_completes(ray_cluster, tmp_path: Path) -> None:
    assert_one_diverged_one_completed(tmp_path, ["--backend", "ray"])
