"""The printed compare table: the compact layout fits the terminal, --wide and --columns, and null values.

The six SRN run folders are written here from the shipped configs and numbers like the real runs'
(no training), so the layout tests take milliseconds; the diverged run is a real one.
"""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from gradexp.cli import main
from gradexp.compare import WIDE, build_table, format_table, gather_runs
from gradexp.compare.printing import KEEP_ORDER, compact_columns, compact_headers, compact_value, fit_to_width
from gradexp.compare.runs import short_names
from gradexp.compare.table import run_labels, table_csv
from gradexp.config.loading import load_config
from gradexp.errors import OptionError
from gradexp.runner import run
from tests.conftest import CONFIGS

SRN_PARAMETERS = ["embedding.weight", "rnn_model.W", "rnn_model.U", "rnn_model.b", "classifier.weight",
                  "classifier.bias"]
# Config name: best dev loss, test accuracy, max total norm, clipped share; the six shipped SRN runs' numbers.
SIX_SRN = {
    "srn_explode": (169.6, 0.08, 6482.0, 0.0),
    "srn_clip": (3.954, 0.04, 1345.0, 1.0),
    "srn_clip_global": (2.806, 0.1, 77.62, 1.0),
    "srn_agc": (2.877, 0.06, 86.83, 1.0),
    "srn_autoclip": (163.3, 0.06, 3067.0, 0.868),
    "srn_zclip": (37.12, 0.09, 3091.0, 0.996),
}


def write_run(folder: Path, config: dict | None, summary: dict | None, metrics: pd.DataFrame) -> Path:
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    metrics.to_csv(folder / "metrics.csv", index=False)
    return folder


def norms_frame(totals: list[float], clipped: list[int]) -> pd.DataFrame:
    """metrics.csv rows whose parameter norms share each step's total, W the largest."""
    frame = pd.DataFrame({"step": range(1, len(totals) + 1)})
    for share, name in zip([0.05, 0.8, 0.4, 0.1, 0.3, 0.05], SRN_PARAMETERS):
        frame[f"grad_norm/{name}"] = [total * share for total in totals]
    frame["grad_norm/total"] = totals
    frame["clipped"] = clipped
    return frame


@pytest.fixture
def six_srn_runs(tmp_path: Path) -> Path:
    """Six run folders like `gradexp run configs/srn_<...>.yaml` writes, under one folder; returns it."""
    root = tmp_path / "srnruns"
    for index, (name, (dev_loss, test_accuracy, total_max, clipped)) in enumerate(SIX_SRN.items()):
        totals = [73.8, total_max, total_max / 20]
        steps_clipped = round(clipped * len(totals))
        summary = {
            "name": name, "status": "completed", "steps": 250, "seconds": 0.8, "metric": "accuracy",
            "best_dev": {"step": 250, "loss": dev_loss, "accuracy": 0.12},
            "test": {"loss": dev_loss * 1.01, "accuracy": test_accuracy},
            "max_grad_norm": {name: total_max * 0.8 for name in SRN_PARAMETERS} | {"total": total_max},
            "median_grad_norm": {name: 0.002683 for name in SRN_PARAMETERS} | {"total": 321.3},
            "clip_fraction": clipped, "final_loss": 128.4, "parameters": SRN_PARAMETERS,
            "plot_parameters": ["rnn_model.W", "rnn_model.U", "rnn_model.b"],
        }
        write_run(root / f"{name}-20261130-1015{index:02d}-123456", load_config(CONFIGS / f"{name}.yaml").to_dict(),
                  summary, norms_frame(totals, [1] * steps_clipped + [0] * (len(totals) - steps_clipped)))
    return root


def invoke(*args, width: int = 100):
    return CliRunner(env={"COLUMNS": str(width)}).invoke(main, ["compare", *map(str, args)])


def table_lines(stdout: str) -> list[str]:
    """The printed table and its note, without the closing `wrote ...` line."""
    return [line for line in stdout.splitlines() if not line.startswith("wrote ")]


# The compact layout -----------------------------------------------------------------------------------------

def test_six_srn_runs_fit_100_columns(six_srn_runs: Path, tmp_path: Path) -> None:
    result = invoke(six_srn_runs, "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    lines = table_lines(result.stdout)
    assert max(map(len, lines)) <= 100 and len(lines) == 1 + 6 + 1
    rows, note = lines[1:7], lines[7]
    # The runs by their config names (start time gone), told apart; what differs between them, under short names.
    assert sorted(row.split()[0] for row in rows) == sorted(SIX_SRN)
    # What a reader choosing a clip mode needs first: the mode and threshold, the outcome, when the norm exploded
    # and how often clipping acted; a setting of only some modes (norm_type) gives way before them.
    assert lines[0].split()[:4] == ["run", "clip", "threshold", "status"]
    assert {"explode>100", "clipped", "max"} <= set(lines[0].split()) and "norm_type" not in lines[0]
    explode = next(row for row in rows if row.startswith("srn_explode "))
    assert explode.split()[1] == "none" and explode.split()[-2:] == ["2", "0.0%"]
    clip_global = next(row for row in rows if row.startswith("srn_clip_global "))
    assert clip_global.split()[1:3] == ["global_norm", "6"] and clip_global.split()[-2] == "never"
    # What did not fit is counted and named, the most important first.
    shown, left_out = fit_to_width(compact_columns(build_table(gather_runs([six_srn_runs]).runs)), 100)
    assert lines[0].split() == " ".join(column.header for column in shown).split()
    assert note.startswith(f"{len(left_out)} columns not shown to fit 100: norm_type, time, ")
    assert note.endswith("; see gradexp compare --wide")


def test_a_wide_terminal_shows_every_compact_column(six_srn_runs: Path, tmp_path: Path) -> None:
    result = invoke(six_srn_runs, "--out", tmp_path / "cmp", width=300)
    lines = table_lines(result.stdout)
    assert len(lines) == 1 + 6  # no note: nothing was left out
    for header in ("dev accuracy", "test accuracy", "dev loss", "W max", "U max", "b max", "total max", "clipped",
                   "time", "eps", "percentile", "warmup_steps"):
        assert header in lines[0]
    # The compact layout stays compact: full keys, medians and the explosion's parameter are --wide's.
    assert "clip.threshold" not in lines[0] and "med" not in lines[0] and " by " not in lines[0]
    srn_zclip = next(row for row in lines[1:] if row.startswith("srn_zclip "))
    assert "99.6%" in srn_zclip and "37.12" in srn_zclip


@pytest.mark.parametrize("width", [100, 80, 60, 30])
def test_narrow_terminals_drop_the_least_important_columns_first(six_srn_runs: Path, width: int) -> None:
    table = build_table(gather_runs([six_srn_runs]).runs)
    chosen = compact_columns(table)
    shown, left_out = fit_to_width(chosen, width)
    printed = format_table(table, width=width).splitlines()
    assert printed[0].split()[0] == "run" and len(printed) == 1 + 6 + 1
    assert max(map(len, printed[:-1])) <= width or len(shown) == 1
    # Shown columns keep their order; every column left out is less important than every column shown.
    shown_keys = [column.key for column in shown]
    assert shown_keys == [column.key for _, column in chosen if column.key in shown_keys]
    group = {column.key: KEEP_ORDER.index(name) for name, column in chosen}
    assert max(group[key] for key in shown_keys) <= min(group[column.key] for column in left_out)
    assert len(shown) + len(left_out) == len(chosen)


def test_wide_prints_every_column(six_srn_runs: Path, tmp_path: Path) -> None:
    table = build_table(gather_runs([six_srn_runs]).runs)
    result = invoke(six_srn_runs, "--wide", "--out", tmp_path / "cmp")
    assert result.exit_code == 0
    lines = table_lines(result.stdout)
    assert len(lines) == 1 + 6 and max(map(len, lines)) > 100
    for column in table.columns:
        assert (column.header in lines[0]) == column.printed, column.key
    for folder in six_srn_runs.iterdir():
        assert sum(line.startswith(folder.name + " ") for line in lines) == 1
    # --columns wide is the same choice.
    assert invoke(six_srn_runs, "--columns", "wide", "--out", tmp_path / "cmp").stdout == result.stdout


def test_compare_csv_keeps_every_column_and_gains_the_loss(six_srn_runs: Path, tmp_path: Path) -> None:
    invoke(six_srn_runs, "--out", tmp_path / "cmp")
    written = pd.read_csv(tmp_path / "cmp" / "compare.csv").set_index("run")
    table = build_table(gather_runs([six_srn_runs]).runs)
    assert ["run", *written.columns] == [column.key for column in table.columns]
    assert {"path", "clip.eps", "median_grad_norm/rnn_model.W", "first_explosion_parameter", "best_dev/loss",
            "test/loss"} <= set(written.columns)
    for folder in six_srn_runs.iterdir():
        summary = json.loads((folder / "summary.json").read_text())
        assert written.loc[folder.name, "best_dev/loss"] == summary["best_dev"]["loss"]
        assert written.loc[folder.name, "test/accuracy"] == summary["test"]["accuracy"]


def test_columns_picks_by_csv_or_printed_name(six_srn_runs: Path, tmp_path: Path) -> None:
    result = invoke(six_srn_runs, "--columns", "run, clip.mode,dev loss,median_grad_norm/rnn_model.W",
                    "--out", tmp_path / "cmp")
    assert result.exit_code == 0
    lines = table_lines(result.stdout)
    assert lines[0].split() == ["run", "clip.mode", "dev", "loss", "W", "med"] and len(lines) == 1 + 6
    explode = next(line for line in lines if line.startswith("srn_explode-"))
    assert explode.split()[1:4] == ["none", "169.6", "0.002683"]
    result = invoke(six_srn_runs, "--columns", "run,dev los", "--out", tmp_path / "bad")
    assert result.exit_code == 2 and result.stdout == "" and not (tmp_path / "bad").exists()
    assert result.stderr == ("error: --columns: no column 'dev los' (did you mean 'dev loss'?); "
                             "name compare.csv's headers or those of --wide\n")
    with pytest.raises(OptionError, match="no column named"):
        format_table(build_table(gather_runs([six_srn_runs]).runs), [])


# Short names -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("names, shown_keys, expected", [
    # The start time goes; configs stay told apart by name.
    (["srn_clip-20261130-101500-123456", "srn_clip_global-20261130-101501"], [], ["srn_clip", "srn_clip_global"]),
    # One config run twice, nothing in the table to tell the runs apart: the start time stays.
    (["srn_clip-20261130-101500", "srn_clip-20261130-101502"], [],
     ["srn_clip-20261130-101500", "srn_clip-20261130-101502"]),
    # ... unless a differing field shown beside them does (gradexp run --set optimizer.lr=...).
    (["srn_clip-20261130-101500", "srn_clip-20261130-101502"], ["optimizer.lr"], ["srn_clip", "srn_clip"]),
    # A sweep point's name repeats its grid values: its number is enough.
    (["000-lr1e-05-thresholdnone-seed0-20261130-101500", "001-lr0.1-threshold1-seed0-20261130-101500"],
     ["optimizer.lr", "clip.threshold", "clip.mode"], ["000", "001"]),
    # A name part that does not repeat a shown key stays.
    (["srn_explode-20261130-101500", "mlp_regression_explode-20261130-101500"], ["model.name", "clip.mode"],
     ["srn_explode", "mlp_regression_explode"]),
    (["sweep1/run", "sweep2/run"], [], ["sweep1/run", "sweep2/run"]),
])
def test_short_names(names, shown_keys, expected) -> None:
    assert short_names(names, shown_keys) == expected


def test_compact_headers_and_values() -> None:
    assert compact_headers(["optimizer.lr", "clip.threshold", "clip.mode", "model.sizes.hidden", "data.hidden",
                            "optimizer.name"]) == ["lr", "threshold", "clip", "sizes.hidden", "data.hidden",
                                                   "optimizer"]
    # Two keys that would read alike keep their full names.
    assert compact_headers(["clip.mode", "train.clip"]) == ["clip.mode", "train.clip"]
    assert [compact_value(value) for value in (5.0, 0.001, "global_norm")] == ["5", "0.001", "global_norm"]
    cut = compact_value("/home/someone/data/mnist-original")
    assert cut == "/home...original"


# Null values -----------------------------------------------------------------------------------------------

NULL_SUMMARY = {
    "status": "diverged", "diverged_at_step": 3, "steps": 3, "metric": "accuracy", "seconds": None,
    "best_dev": None, "test": {"accuracy": None, "loss": math.nan}, "final_loss": math.nan,
    "max_grad_norm": {"rnn_model.W": None, "total": None}, "median_grad_norm": None, "clip_fraction": None,
    "parameters": None, "plot_parameters": None,
}


@pytest.mark.parametrize("summary", [NULL_SUMMARY, NULL_SUMMARY | {"test": None, "max_grad_norm": None},
                                     NULL_SUMMARY | {"test": {"accuracy": None}, "best_dev": {"loss": None}}])
def test_null_summary_values_read_n_a(six_srn_runs: Path, tmp_path: Path, summary: dict) -> None:
    frame = norms_frame([50.0, math.inf, math.nan], [0, 0, 0])
    frame.loc[:, "grad_norm/rnn_model.U"] = math.nan
    diverged = write_run(six_srn_runs / "diverged-20261130-101600", None, summary, frame)
    table = build_table(gather_runs([six_srn_runs]).runs)
    row = {column.key: column.cells[[r.path for r in table.runs].index(diverged)] for column in table.columns}
    assert row["status"] == "diverged at step 3" and row["best_dev/accuracy"] is None and row["seconds"] is None
    assert row["test/accuracy"] is None and row["first_explosion_step"] == 2
    # A null norm falls back on metrics.csv's finite values, and is n/a where it has none.
    assert row["max_grad_norm/rnn_model.W"] == 40.0 and row["max_grad_norm/rnn_model.U"] is None
    for text in (format_table(table), format_table(table, WIDE), format_table(table, width=400)):
        diverged_line = next(line for line in text.splitlines() if line.startswith("diverged"))
        assert "n/a" in diverged_line and "None" not in diverged_line
    written = pd.read_csv(io.StringIO(table_csv(table))).set_index("run").loc["diverged-20261130-101600"]
    assert np.isnan(written["best_dev/accuracy"]) and np.isnan(written["test/loss"])
    result = invoke(six_srn_runs, "--wide", "--out", tmp_path / "cmp")
    assert result.exit_code == 0 and result.stderr == ""


@pytest.mark.slow
def test_a_real_diverged_run_beside_a_completed_one(tmp_path: Path) -> None:
    config = CONFIGS / "mlp_regression_explode.yaml"
    diverged = run(load_config(config), tmp_path / "runs").run_dir
    completed = run(load_config(config, ["optimizer.lr=0.001"]), tmp_path / "runs").run_dir
    summary = json.loads((diverged / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["best_dev"] is None and summary["test"]["mse"] is None
    result = invoke(tmp_path / "runs", "--out", tmp_path / "cmp")
    assert result.exit_code == 0 and result.stderr == ""
    lines = table_lines(result.stdout)
    assert max(map(len, lines)) <= 100
    # One config run twice: the runs share its name and the learning rate tells them apart.
    assert lines[0].split()[:3] == ["run", "lr", "status"]
    diverged_line = next(line for line in lines if " 0.01 " in line)
    completed_line = next(line for line in lines if " 0.001 " in line)
    assert diverged_line.startswith("mlp_regression_explode ") and completed_line.startswith("mlp_regression_explode ")
    assert f"diverged at step {summary['diverged_at_step']}" in diverged_line and "n/a" in diverged_line
    # The MSE regression's dev loss is its metric: no second column repeats it.
    assert "dev loss" not in result.stdout
    written = pd.read_csv(tmp_path / "cmp" / "compare.csv").set_index("run")
    assert pd.isna(written.loc[diverged.name, "test/mse"]) and pd.isna(written.loc[diverged.name, "best_dev/loss"])
    completed_summary = json.loads((completed / "summary.json").read_text())
    assert written.loc[completed.name, "test/mse"] == completed_summary["test"]["mse"]
    wide = invoke(tmp_path / "runs", "--wide", "--out", tmp_path / "cmp")
    assert wide.exit_code == 0 and "n/a" in wide.stdout and "dev loss" in wide.stdout


def test_runs_of_one_config_keep_their_full_names_when_the_fields_telling_them_apart_are_left_out(
        six_srn_runs: Path, tmp_path: Path) -> None:
    # Two runs of srn_clip.yaml that differ only in a field the narrow table has to leave out: their short names
    # (srn_clip) would read alike, so they keep their start times.
    source = next(six_srn_runs.glob("srn_clip-*"))
    twin = tmp_path / "twins" / "srn_clip-20261130-111111-654321"
    shutil.copytree(source, twin)
    config = yaml.safe_load((twin / "config.yaml").read_text())
    config["clip"]["threshold"] = 1.0
    (twin / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copytree(source, tmp_path / "twins" / source.name)
    runs = gather_runs([tmp_path / "twins"]).runs
    wide_enough = format_table(build_table(runs), width=300).splitlines()
    assert [line.split()[0] for line in wide_enough[1:]] == ["srn_clip", "srn_clip"]  # the threshold tells them apart
    narrow = format_table(build_table(runs), width=40).splitlines()
    assert "threshold" not in narrow[0]
    assert sorted(line.split()[0] for line in narrow[1:3]) == sorted(path.name for path in (source, twin))


def test_a_legend_label_lists_at_most_a_few_fields_and_then_names_the_run() -> None:
    config = {f"section.key{index}": index for index in range(7)}
    other = {key: value + 1 for key, value in config.items()}
    labels = run_labels([config, other], list(config), ["first-run", "second-run"])
    assert labels[0] == "first-run (section.key0=0, section.key1=1, section.key2=2, section.key3=3, ... (3 more))"
    assert run_labels([config, other], list(config)[:2], ["a", "b"]) == ["section.key0=0, section.key1=1",
                                                                         "section.key0=1, section.key1=2"]
