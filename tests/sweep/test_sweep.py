"""`gradexp sweep`: grid parsing and expansion, per-point checks, the run folders, sweep.csv and the CLI."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from gradexp.cli import main
from gradexp.config.loading import load_config
from gradexp.errors import ConfigError
from gradexp.runner import run
from gradexp.sweep import plan_sweep, run_sweep
from gradexp.sweep.backends.local import LocalBackend
from gradexp.sweep.backends.vectorized import VectorizedBackend
from gradexp.sweep.outcomes import FAILED
from tests.conftest import CONFIGS
from gradexp.sweep.grid import expand, parse_axis, point_config

SOURCE = "sweep.yaml"


def test_grid_values_are_read_as_set_reads_them() -> None:
    axis = parse_axis("optimizer.lr=0.1, 1 ,none,inf", SOURCE)
    assert axis.key == "optimizer.lr"
    assert axis.texts == ("0.1", "1", "none", "inf")
    assert axis.values == (0.1, 1, None, "inf")  # "inf" becomes a float when the config checks it
    # ... except where `none` is a component's name: a grid over clip modes can include no clipping.
    assert parse_axis("clip.mode=none,value", SOURCE).values == ("none", "value")


@pytest.mark.parametrize("text,complaint", [
    ("optimizer.lr", "expected section.key=v1,v2"),
    ("optimizer.lr=0.1,,0.2", "no empty value"),
    ("lr=0.1,0.2", "expected section.key=v1,v2"),
    ("optimizer.lr=0.1,0.1", "listed twice"),
])
def test_malformed_grid_options_are_config_errors(text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint) as raised:
        parse_axis(text, SOURCE)
    assert raised.value.key == f"--grid {text}"


def test_expansion_is_the_cartesian_product_with_the_last_axis_fastest() -> None:
    axes = [parse_axis("optimizer.lr=0.1,0.2", SOURCE), parse_axis("clip.threshold=1,none", SOURCE)]
    points = expand(axes, seeds=2, base_seed=7, source=SOURCE)
    assert [(p.value("optimizer.lr"), p.value("clip.threshold"), p.seed) for p in points] == [
        (0.1, 1, 7), (0.1, 1, 8), (0.1, None, 7), (0.1, None, 8),
        (0.2, 1, 7), (0.2, 1, 8), (0.2, None, 7), (0.2, None, 8)]
    assert [p.index for p in points] == list(range(8))
    assert points[2].name == "002-lr0.1-thresholdnone-seed7"
    assert points[2].overrides == ["optimizer.lr=0.1", "clip.threshold=none", "train.seed=7"]


def test_a_grid_over_seeds_replaces_seeds() -> None:
    points = expand([parse_axis("train.seed=3,5", SOURCE)], seeds=1, base_seed=0, source=SOURCE)
    assert [p.seed for p in points] == [3, 5] and all(not p.assignments for p in points)
    with pytest.raises(ConfigError, match="leave --seeds out"):
        expand([parse_axis("train.seed=3,5", SOURCE)], seeds=2, base_seed=0, source=SOURCE)


def test_threshold_none_means_no_clipping(write_config) -> None:
    path = write_config(clip={"mode": "norm", "threshold": 5.0, "norm_type": 1})
    raw = yaml.safe_load(path.read_text())
    clipped, unclipped = expand([parse_axis("clip.threshold=2,none", SOURCE)], 1, 0, SOURCE)
    assert point_config(raw, clipped, SOURCE).clip.params == {"threshold": 2.0, "norm_type": 1.0}
    config = point_config(raw, unclipped, SOURCE)
    assert config.clip.name == "none" and config.clip.params == {}
    assert config.name == "001-thresholdnone-seed0" and config.train.seed == 0


def test_a_point_whose_value_does_not_fit_is_failed_and_the_others_are_kept(write_config) -> None:
    plan = plan_sweep(write_config(), [], ["optimizer.lr=0.1,-1"], seeds=1)
    good, bad = plan.configs
    assert good.optimizer.params["lr"] == 0.1
    assert isinstance(bad, ConfigError) and bad.key == "optimizer.lr (from --grid)"
    assert "expected a value > 0, got -1" in str(bad)
    assert [point.index for point, _ in plan.runnable] == [0]


def test_a_sweep_with_no_valid_point_is_an_error(write_config) -> None:
    with pytest.raises(ConfigError, match="optimizer.lr \\(from --grid\\)"):
        plan_sweep(write_config(), [], ["optimizer.lr=-1,-2"], seeds=1)
    with pytest.raises(ConfigError, match="nothing to sweep"):
        plan_sweep(write_config(), [], [], seeds=1)


def test_sweep_writes_a_run_folder_per_point_and_one_row_each(write_config, tmp_path: Path) -> None:
    """Each point's metrics.csv is byte-identical to `gradexp run` with the same values: one run path."""
    path = write_config(clip={"mode": "norm", "threshold": 0.3})
    plan = plan_sweep(path, ["train.epochs=1"], ["optimizer.lr=0.05,0.5,0", "clip.threshold=0.3,none"], seeds=1,
                      metric="best_dev")
    heard = []
    result = run_sweep(plan, tmp_path / "runs", LocalBackend(), finished=heard.append)
    assert result.folder.parent == tmp_path / "runs" and result.folder.name.startswith("sweep-tiny-")
    assert sorted(outcome.point.index for outcome in heard) == list(range(6))
    table = pd.read_csv(result.folder / "sweep.csv", keep_default_na=False, na_values=[""])
    assert list(table["status"]) == ["completed"] * 4 + [FAILED] * 2
    assert table.loc[4, "error"].endswith("optimizer.lr (from --grid): expected a value > 0, got 0")
    assert list(table["clip.threshold"].astype(str)) == ["0.3", "none"] * 3
    unclipped_path = write_config(name="unclipped")
    for _, row in table[table.status == "completed"].iterrows():
        run_dir = result.folder / row["run"]
        summary = json.loads((run_dir / "summary.json").read_text())
        assert row["best_dev/accuracy"] == summary["best_dev"]["accuracy"]
        assert row["test/accuracy"] == summary["test"]["accuracy"]
        assert row["max_grad_norm/rnn_model.W"] == pytest.approx(summary["max_grad_norm"]["rnn_model.W"])
        lr, threshold = row["optimizer.lr"], str(row["clip.threshold"])
        twin = (path, ["train.epochs=1", f"optimizer.lr={lr}", f"clip.threshold={threshold}"]) if threshold != "none" \
            else (unclipped_path, ["train.epochs=1", f"optimizer.lr={lr}"])
        direct = run(load_config(*twin), tmp_path / "direct").run_dir
        assert (direct / "metrics.csv").read_bytes() == (run_dir / "metrics.csv").read_bytes()
    assert (result.folder / "sweep.pdf").read_bytes().startswith(b"%PDF")
    # The runs' columns are compare.csv's, under the same names and with the same values.
    compared = CliRunner().invoke(main, ["compare", str(result.folder), "--out", str(tmp_path / "compared")])
    assert compared.exit_code == 0, compared.output
    compare_csv = pd.read_csv(tmp_path / "compared" / "compare.csv", na_values=["n/a"]).set_index("run")
    by_run = table.dropna(subset=["run"]).set_index("run")
    grid_keys = ("optimizer.lr", "clip.threshold")  # as typed in sweep.csv, as resolved in compare.csv
    shared = [column for column in compare_csv.columns if column in by_run.columns and column not in grid_keys]
    assert {"path", "test/accuracy", "best_dev/loss", "max_grad_norm/total", "first_explosion_step",
            "clip_fraction"} <= set(shared)
    assert set(compare_csv.columns) - set(shared) <= {"status", "optimizer.lr", "clip.mode", "clip.threshold"}
    for column in shared:
        for ours, theirs in zip(by_run.loc[compare_csv.index, column], compare_csv[column]):
            assert same_cell(ours, theirs), (column, ours, theirs)
    assert yaml.safe_load((result.folder / "sweep.yaml").read_text())["grid"]["clip.threshold"] == ["0.3", "none"]


def test_a_diverged_or_crashed_point_does_not_stop_the_others(write_config, tmp_path: Path) -> None:
    plan = plan_sweep(write_config(), [], ["optimizer.lr=1.0e+30,1.0e+300,0.1"], seeds=1)
    result = run_sweep(plan, tmp_path, LocalBackend())
    diverged, crashed, completed = result.outcomes
    assert diverged.status == "diverged" and completed.status == "completed"
    assert crashed.status == FAILED and "overflow" in crashed.error
    assert crashed.run_dir is not None and crashed.run_dir.name.startswith("001-")  # kept what it wrote
    assert list(result.table["diverged_at_step"].isna()) == [False, True, True]


@pytest.mark.subprocess
def test_parallel_jobs_train_the_same_runs(write_config, tmp_path: Path) -> None:
    plan = plan_sweep(write_config(), ["train.epochs=1"], ["optimizer.lr=0.05,0.5"], seeds=1)
    one = run_sweep(plan, tmp_path / "one", LocalBackend(jobs=1))
    two = run_sweep(plan, tmp_path / "two", LocalBackend(jobs=2))
    for first, second in zip(one.outcomes, two.outcomes):
        assert second.status == "completed"
        assert (first.run_dir / "metrics.csv").read_bytes() == (second.run_dir / "metrics.csv").read_bytes()


@pytest.mark.subprocess
def test_cli_sweep_runs_are_the_same_whatever_the_jobs(tmp_path: Path) -> None:
    # E1's own shapes (64 x 32 matrices), not the tiny config: big enough that torch splits a step's float32
    # sums among its threads, so a thread count that followed --jobs would change the last digits.
    arguments = ["sweep", str(CONFIGS / "srn_clip.yaml"), "--grid", "optimizer.lr=0.05,0.2", "--set", "train.epochs=1"]
    for jobs in ("1", "2"):
        result = CliRunner().invoke(main, [*arguments, "--jobs", jobs, "--out", str(tmp_path / jobs)])
        assert result.exit_code == 0, result.output
    one, two = sorted(tmp_path.glob("1/sweep-*/0*")), sorted(tmp_path.glob("2/sweep-*/0*"))
    assert len(one) == len(two) == 2
    for first, second in zip(one, two):
        assert (first / "metrics.csv").read_bytes() == (second / "metrics.csv").read_bytes(), second
    settings = yaml.safe_load(next(tmp_path.glob("2/sweep-*/sweep.yaml")).read_text())
    assert (settings["backend"], settings["cpus_per_run"]) == ("local", 1)


def test_cli_sweep_prints_each_run_and_the_comparison(write_config, tmp_path: Path) -> None:
    path = write_config()
    result = CliRunner().invoke(main, ["sweep", str(path), "--grid", "optimizer.lr=0.05,0.1", "--seeds", "2",
                                       "--set", "train.epochs=1", "--out", str(tmp_path), "--metric",
                                       "max_grad_norm/total"])
    assert result.exit_code == 0, result.output
    assert "sweep of 4 runs (4 valid)" in result.output
    assert "000-lr0.05-seed0: completed, test accuracy" in result.output
    assert "003-lr0.1-seed1: completed" in result.output
    assert "explode" in result.output  # the compare table's header
    assert len(list(tmp_path.glob("sweep-tiny-*/*/summary.json"))) == 4


@pytest.mark.parametrize("arguments,message", [
    (["--grid", "optimizer.lr"], "error: .*--grid optimizer.lr: expected section.key=v1,v2"),
    (["--grid", "optimizer.lr=0.1", "--metric", "accuracy"], "error: --metric: expected one of test"),
    (["--grid", "optimiser.lr=0.1,0.2"], "unknown section 'optimiser'"),
])
def test_cli_sweep_errors_are_one_line_and_exit_2(write_config, tmp_path: Path, arguments, message) -> None:
    result = CliRunner().invoke(main, ["sweep", str(write_config()), "--out", str(tmp_path), *arguments])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert re.search(message, result.output)
    assert not list(tmp_path.glob("sweep-*"))


def same_cell(first: object, second: object) -> bool:
    """Equal as numbers where both read as numbers (5 and 5.0, missing and missing), else as text."""
    try:
        first, second = float(first), float(second)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(first) == str(second)
    return first == second or (math.isnan(first) and math.isnan(second))


# E2 with SGD at lr 0.01 diverges within its first epoch (seed 000); at lr 0.001 it trains to the end.
DIVERGING_GRID = ["sweep", str(CONFIGS / "mlp_regression_explode.yaml"), "--grid", "optimizer.lr=0.01,0.001",
                  "--set", "train.epochs=2"]
# What every finished run folder holds (and best.pt where a dev evaluation improved); last.pt, the resume
# point, is gone once summary.json is written.
# (the diverging grid is an MLP's: a feed-forward stack's run draws grad_flow.pdf too)
FINISHED_RUN_FILES = {"config.yaml", "metrics.csv", "eval.csv", "grad_norms.pdf", "loss.pdf", "summary.json",
                      "grad_flow.pdf"}


def assert_one_diverged_one_completed(out: Path, backend_arguments: list[str]) -> None:
    """The sweep goes on past a diverged point: exit 0, both rows in sweep.csv, both run folders finished."""
    result = CliRunner().invoke(main, [*DIVERGING_GRID, *backend_arguments, "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(next(out.glob("sweep-*/sweep.csv")))
    assert list(table["status"]) == ["diverged", "completed"]
    assert table["diverged_at_step"].iloc[0] > 0 and pd.isna(table["test/mse"].iloc[0])
    assert table["test/mse"].iloc[1] > 0
    for run_name in table["run"]:
        folder = next(out.glob(f"sweep-*/{run_name}"))
        assert {path.name for path in folder.iterdir()} - {"best.pt"} == FINISHED_RUN_FILES, folder
    # The progress lines count finished runs, whichever finishes first.
    counters = re.findall(r"^\[(\d)/2\] finished: ", result.output, flags=re.MULTILINE)
    assert counters == ["1", "2"], result.output
    assert re.search(r"000-lr0.01-seed0: diverged at step \d+$", result.output, flags=re.MULTILINE)
    assert re.search(r"001-lr0.001-seed0: completed, test mse \d", result.output)
    assert "explode" in result.output  # the compare table, diverged run included


@pytest.mark.parametrize("backend_arguments", [[], pytest.param(["--jobs", "2"], marks=pytest.mark.subprocess),
                                               ["--vectorize"]], ids=["one-at-a-time", "jobs", "vectorized"])
def test_a_point_that_diverges_beside_one_that_completes(tmp_path: Path, backend_arguments: list[str]) -> None:
    assert_one_diverged_one_completed(tmp_path, backend_arguments)


class ReportFailed(Exception):
    pass


def failing_report(outcome) -> None:
    raise ReportFailed(outcome.point.name)


@pytest.mark.parametrize("backend", [pytest.param(LocalBackend(jobs=2), marks=pytest.mark.subprocess),
                                     VectorizedBackend()], ids=["jobs", "vectorized"])
def test_a_failing_report_is_not_taken_for_a_failed_point(write_config, tmp_path: Path, backend) -> None:
    # Before, the report's error marked the point (--jobs) or its batch-mates (--vectorize) failed and the sweep
    # went on; it is the caller's bug, so it reaches the caller.
    plan = plan_sweep(write_config(), ["train.epochs=1"], ["optimizer.lr=0.05,0.1"], 1)
    with pytest.raises(ReportFailed):
        run_sweep(plan, tmp_path, backend, finished=failing_report)
