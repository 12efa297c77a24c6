"""The local backend one point at a time: each run's plots are drawn in worker processes while the next point
trains, and a point is finished (summary.json) only once its plots are."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from gradexp.errors import OutputError
from gradexp.plotting import runs as plotting_runs
from gradexp.sweep import plan_sweep, run_sweep
from gradexp.sweep.backends.local import LocalBackend
from gradexp.sweep.outcomes import FAILED

DRAWING_SECONDS = 0.4


@pytest.fixture
def slow_logged_drawing(monkeypatch):
    """plot_run as it is, but slower and leaving a note (process, start, end) in the run folder. The workers
    are forked, so they draw with this patched module."""
    real_plot_run = plotting_runs.plot_run

    def plot_run(run_dir: Path, plot, parameters) -> None:
        started = time.time()
        time.sleep(DRAWING_SECONDS)
        if run_dir.name.startswith("001-"):
            raise OutputError(str(run_dir / "grad_norms.pdf"), "cannot be written (disk full)")
        real_plot_run(run_dir, plot, parameters)
        note = {"pid": os.getpid(), "started": started, "ended": time.time()}
        (run_dir / "drawn.json").write_text(json.dumps(note))

    monkeypatch.setattr(plotting_runs, "plot_run", plot_run)


def test_plots_are_drawn_in_workers_while_the_next_point_trains(write_config, tmp_path: Path,
                                                                  slow_logged_drawing) -> None:
    plan = plan_sweep(write_config(), ["train.epochs=1"], ["optimizer.lr=0.01,0.02,0.05,0.1"], seeds=1)
    heard = []
    result = run_sweep(plan, tmp_path, LocalBackend(), finished=heard.append)
    assert [outcome.status for outcome in result.outcomes] == ["completed", FAILED, "completed", "completed"]
    assert [outcome.point.index for outcome in heard] == [0, 1, 2, 3]  # in order, though drawn aside
    drawn = [outcome.run_dir for outcome in result.outcomes if outcome.status == "completed"]
    notes = [json.loads((run_dir / "drawn.json").read_text()) for run_dir in drawn]
    assert all(note["pid"] != os.getpid() for note in notes)
    for run_dir, note in zip(drawn, notes):
        summary = json.loads((run_dir / "summary.json").read_text())
        # The summary comes after the plots, and its seconds count the drawing.
        assert (run_dir / "summary.json").stat().st_mtime >= (run_dir / "loss.pdf").stat().st_mtime
        assert summary["seconds"] >= DRAWING_SECONDS
        assert (run_dir / "grad_norms.pdf").read_bytes().startswith(b"%PDF")
    # The next point's run folder was made while the first point's plots were still being drawn.
    second_started = (result.outcomes[1].run_dir / "config.yaml").stat().st_mtime
    assert second_started < notes[0]["ended"]


def test_a_point_whose_plots_fail_is_failed_and_keeps_its_folder(write_config, tmp_path: Path,
                                                                  slow_logged_drawing) -> None:
    plan = plan_sweep(write_config(), ["train.epochs=1"], ["optimizer.lr=0.01,0.02,0.05"], seeds=1)
    failed = run_sweep(plan, tmp_path, LocalBackend()).outcomes[1]
    assert failed.status == FAILED and failed.error.endswith("grad_norms.pdf: cannot be written (disk full)")
    assert (failed.run_dir / "metrics.csv").exists() and not (failed.run_dir / "summary.json").exists()
