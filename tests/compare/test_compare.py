"""`gradexp compare`: real tiny runs compared, every cell checked against the run's own files."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gradexp.cli import main
from gradexp.compare import WIDE, build_table, format_table, gather_runs
from gradexp.compare.explosion import first_explosion
from gradexp.compare.figure import comparison_figure
from gradexp.compare.runs import unique_names
from gradexp.recording.folder import flatten
from gradexp.recording.summary import RunSummary
from gradexp.compare.table import differing_keys, run_labels, status_text
from gradexp.config.loading import load_config
from gradexp.runner import run
from tests.conftest import CONFIGS, TINY_SRN, merged, train_tiny

# The article's explosion run (lr 0.2, loss summed over the batch) without clipping and with two clip modes.
# The global threshold sits inside the range of the total norm, so clipping acts on some steps, not all.
TINY_RUNS = {
    "explode": {"clip": {"mode": "none"}},
    "clip_norm": {"clip": {"mode": "norm", "threshold": 5.0}},
    "clip_global": {"clip": {"mode": "global_norm", "threshold": 50.0}},
}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """name -> run folder of three tiny SRN runs, all under one `runs/` folder (read-only for the tests)."""
    root = tmp_path_factory.mktemp("compare")
    folders = {}
    for name, changes in TINY_RUNS.items():
        config = merged(TINY_SRN, {"optimizer": {"lr": 0.2}, "loss": {"reduction": "sum"}, **changes})
        folders[name] = train_tiny(root, name, config).run_dir
    return folders


def invoke(*args):
    # A fixed terminal width: the compact table's columns depend on it.
    return CliRunner(env={"COLUMNS": "100"}).invoke(main, ["compare", *map(str, args)])


def row_of(table, run_dir: Path) -> dict:
    index = [run.path for run in table.runs].index(run_dir)
    return {column.key: column.cells[index] for column in table.columns}


def expected_explosion(metrics_csv: Path, threshold: float) -> tuple[int, str]:
    """The first explosion straight from pandas: first row whose total is > threshold or not finite; its largest
    (or first non-finite) parameter norm."""
    metrics = pd.read_csv(metrics_csv)
    total = metrics["grad_norm/total"]
    hit = metrics[(total > threshold) | ~np.isfinite(total)].iloc[0]
    norms = hit[[c for c in metrics.columns if c.startswith("grad_norm/") and c != "grad_norm/total"]]
    non_finite = norms[~np.isfinite(norms.astype(float))]
    column = non_finite.index[0] if len(non_finite) else norms.astype(float).idxmax()
    return int(hit["step"]), column[len("grad_norm/"):]


def one_line(text: str) -> bool:
    return text.count("\n") == 1 and "Traceback" not in text


# The first explosion ---------------------------------------------------------------------------------------

def test_explosion_step_and_parameter_match_the_csv(tiny_runs) -> None:
    table = build_table(gather_runs([tiny_runs["explode"].parent]).runs)
    row = row_of(table, tiny_runs["explode"])
    step, parameter = expected_explosion(tiny_runs["explode"] / "metrics.csv", 100.0)
    assert (row["first_explosion_step"], row["first_explosion_parameter"]) == (step, parameter)
    # The threshold moves the step: with a threshold above every total, nothing exploded.
    totals = pd.read_csv(tiny_runs["explode"] / "metrics.csv")["grad_norm/total"]
    low = build_table(table.runs, explode_at=float(totals.iloc[0]) / 2)
    assert row_of(low, tiny_runs["explode"])["first_explosion_step"] == 1
    never = build_table(table.runs, explode_at=float(totals.max()) + 1)
    assert row_of(never, tiny_runs["explode"])["first_explosion_step"] == "never"


def test_first_explosion_by_hand() -> None:
    frame = pd.DataFrame({
        "step": [1, 2, 3, 4],
        "grad_norm/W": [1.0, 60.0, 500.0, math.inf],
        "grad_norm/U": [2.0, 70.0, math.nan, 1.0],
        "grad_norm/b": [3.0, 60.0, 900.0, 1.0],
    })
    frame["grad_norm/total"] = np.sqrt((frame[["grad_norm/W", "grad_norm/U", "grad_norm/b"]] ** 2).sum(axis=1,
                                                                                                       skipna=False))
    # Step 2: no parameter passes 100 but the total (110) does; the largest contributor is named.
    assert first_explosion(frame, 100.0) == first_explosion(frame, 109.0)
    assert (first_explosion(frame, 100.0).step, first_explosion(frame, 100.0).parameter) == (2, "U")
    # Step 3: b is the largest finite norm, but U is not finite, and a non-finite norm comes first.
    assert (first_explosion(frame, 200.0).step, first_explosion(frame, 200.0).parameter) == (3, "U")
    assert first_explosion(frame.iloc[:2], 200.0) is None


def test_non_finite_run_names_the_first_non_finite_parameter(tiny_runs, tmp_path: Path) -> None:
    run_dir = shutil.copytree(tiny_runs["clip_norm"], tmp_path / "nan_run")
    metrics = pd.read_csv(run_dir / "metrics.csv")
    metrics.loc[5, ["grad_norm/rnn_model.U", "grad_norm/classifier.bias", "grad_norm/total"]] = [math.inf, math.nan,
                                                                                                  math.inf]
    metrics.to_csv(run_dir / "metrics.csv", index=False)
    row = row_of(build_table(gather_runs([run_dir]).runs), run_dir)
    assert (row["first_explosion_step"], row["first_explosion_parameter"]) == (6, "rnn_model.U")
    assert expected_explosion(run_dir / "metrics.csv", 100.0) == (6, "rnn_model.U")


# The other cells -------------------------------------------------------------------------------------------

def test_clip_fractions_equal_the_clipped_column_mean(tiny_runs) -> None:
    table = build_table(gather_runs(list(tiny_runs.values())).runs)
    fractions = {name: row_of(table, folder)["clip_fraction"] for name, folder in tiny_runs.items()}
    for name, folder in tiny_runs.items():
        assert fractions[name] == pytest.approx(pd.read_csv(folder / "metrics.csv")["clipped"].mean(), abs=1e-12)
    assert fractions["explode"] == 0.0 and fractions["clip_norm"] == 1.0 and 0.0 < fractions["clip_global"] < 1.0


def test_summary_cells(tiny_runs) -> None:
    table = build_table(gather_runs(list(tiny_runs.values())).runs)
    for folder in tiny_runs.values():
        summary = json.loads((folder / "summary.json").read_text())
        row = row_of(table, folder)
        assert row["run"] == folder.name and row["status"] == "completed"
        assert row["best_dev/accuracy"] == summary["best_dev"]["accuracy"]
        assert row["test/accuracy"] == summary["test"]["accuracy"]
        assert row["seconds"] == summary["seconds"]
        for parameter in ("rnn_model.W", "rnn_model.U", "rnn_model.b", "total"):
            assert row[f"max_grad_norm/{parameter}"] == summary["max_grad_norm"][parameter]
            assert row[f"median_grad_norm/{parameter}"] == summary["median_grad_norm"][parameter]
    # The printed table shows the SRN's plot parameters by their short names, not the embedding or the head.
    header = format_table(table, WIDE).splitlines()[0].split()
    assert {"W", "U", "b"} <= set(header) and "embedding.weight" not in header


def test_metric_option_picks_the_column(tiny_runs) -> None:
    runs = gather_runs([tiny_runs["explode"]]).runs
    table = build_table(runs, metric="loss")
    summary = json.loads((tiny_runs["explode"] / "summary.json").read_text())
    row = row_of(table, tiny_runs["explode"])
    assert row["best_dev/loss"] == summary["best_dev"]["loss"] and "best_dev/accuracy" not in row
    result = invoke(tiny_runs["explode"], "--metric", "f1", "--out", tiny_runs["explode"].parent.parent / "x")
    assert result.exit_code == 2 and one_line(result.stderr)
    assert "--metric: no run recorded 'f1'; they recorded accuracy, loss" in result.stderr


@pytest.mark.parametrize("summary, expected", [
    (None, "incomplete"),
    ({"status": "completed", "steps": 250}, "completed"),
    ({"status": "diverged", "diverged_at_step": 12, "steps": 12}, "diverged at step 12"),
    ({"status": "interrupted", "steps": 7}, "interrupted at step 7"),
    ({"status": "completed", "early_stopped": True, "steps": 40}, "completed (early stop at step 40)"),
    ({"steps": 3}, None),
])
def test_status_text(summary, expected) -> None:
    assert status_text(None if summary is None else RunSummary.from_json(summary)) == expected


# What differs between runs ---------------------------------------------------------------------------------

def test_differing_keys_hide_identical_fields_and_use_dotted_keys() -> None:
    first = flatten({"optimizer": {"lr": 0.2, "momentum": 0.0}, "clip": {"mode": "none"},
                     "model": {"sizes": {"hidden": 8}}, "plot": {"steps": 40}})
    second = flatten({"optimizer": {"lr": 0.1, "momentum": 0.0}, "clip": {"mode": "norm", "threshold": 5.0},
                      "model": {"sizes": {"hidden": 16}}, "plot": {"steps": 100}})
    assert first["model.sizes.hidden"] == 8
    # Identical momentum hidden; a key one run lacks differs; plot settings never count; no config takes no part.
    assert differing_keys([first, second, None]) == ["optimizer.lr", "clip.mode", "model.sizes.hidden",
                                                     "clip.threshold"]
    assert differing_keys([first, dict(first)]) == []
    labels = run_labels([first, second, None], ["clip.mode", "clip.threshold"], ["a", "b", "c"])
    assert labels == ["clip.mode=none", "clip.mode=norm, clip.threshold=5.0", "c"]
    # Two runs with the same settings are told apart by their folder names.
    assert run_labels([first, dict(first)], ["clip.mode"], ["a", "b"]) == ["a (clip.mode=none)",
                                                                        "b (clip.mode=none)"]


def test_table_columns_are_the_differing_config_fields(tiny_runs) -> None:
    table = build_table(gather_runs(list(tiny_runs.values())).runs)
    # norm_type: the same 2.0 in both clip runs, but the run without clipping has none.
    assert table.differing == ["clip.mode", "clip.threshold", "clip.norm_type"]
    row = row_of(table, tiny_runs["explode"])
    assert row["clip.mode"] == "none" and row["clip.threshold"] is None
    assert row_of(table, tiny_runs["clip_norm"])["clip.threshold"] == 5.0
    printed = format_table(table, WIDE)
    assert "optimizer.lr" not in printed and "n/a" in printed
    assert table.labels[[r.path for r in table.runs].index(tiny_runs["clip_global"])] == (
        "clip.mode=global_norm, clip.threshold=50.0, clip.norm_type=2.0")


def test_same_folder_names_are_told_apart() -> None:
    assert unique_names([Path("a/sweep1/run"), Path("a/sweep2/run"), Path("a/other")]) == ["sweep1/run",
                                                                                          "sweep2/run", "other"]


# The figure ------------------------------------------------------------------------------------------------

def test_figure_has_one_curve_per_run_per_panel(tiny_runs) -> None:
    table = build_table(gather_runs([tiny_runs["explode"].parent]).runs)
    figure = comparison_figure(table)
    titles = [axes.get_title() for axes in figure.axes]
    assert [title.split()[0] for title in titles] == ["W", "U", "b", "total", "training"]
    for axes, column in zip(figure.axes, ["grad_norm/rnn_model.W", "grad_norm/rnn_model.U", "grad_norm/rnn_model.b",
                                          "grad_norm/total", "loss"]):
        curves = [line for line in axes.get_lines() if line.get_label() in table.labels]
        assert sorted(line.get_label() for line in curves) == sorted(table.labels)
        assert len({line.get_color() for line in curves}) == len(table.runs) == 3
        assert axes.get_yscale() == "log"
        for run_record, label in zip(table.runs, table.labels):
            line = next(line for line in curves if line.get_label() == label)
            np.testing.assert_array_equal(line.get_ydata(), run_record.metrics[column].to_numpy())
    threshold = [line for line in figure.axes[3].get_lines() if line.get_label() not in table.labels]
    assert len(threshold) == 1 and list(threshold[0].get_ydata()) == [100.0, 100.0]
    assert [text.get_text() for text in figure.legends[0].get_texts()] == table.labels
    plt.close(figure)


# Through the command line ----------------------------------------------------------------------------------

def test_cli_writes_table_csv_and_pdf(tiny_runs, tmp_path: Path) -> None:
    result = invoke(tiny_runs["explode"].parent, "--out", tmp_path / "cmp", "--wide")
    assert result.exit_code == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith("run ") and "explode>100" in lines[0] and len(lines) == 1 + 3 + 2
    assert lines[-2:] == [f"wrote {tmp_path / 'cmp' / 'compare.csv'}", f"wrote {tmp_path / 'cmp' / 'compare.pdf'}"]
    written = pd.read_csv(tmp_path / "cmp" / "compare.csv").set_index("run")
    explode = written.loc[tiny_runs["explode"].name]
    step, parameter = expected_explosion(tiny_runs["explode"] / "metrics.csv", 100.0)
    assert int(explode["first_explosion_step"]) == step and explode["first_explosion_parameter"] == parameter
    assert pd.isna(explode["clip.threshold"]) and explode["clip.mode"] == "none"
    assert written.loc[tiny_runs["clip_global"].name, "clip_fraction"] == pd.read_csv(
        tiny_runs["clip_global"] / "metrics.csv")["clipped"].mean()
    pdf = (tmp_path / "cmp" / "compare.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    # Same runs, same bytes: the PDF carries no timestamp.
    invoke(tiny_runs["explode"].parent, "--out", tmp_path / "again")
    assert (tmp_path / "again" / "compare.pdf").read_bytes() == pdf


def test_default_output_is_a_new_folder_each_time(tiny_runs, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    first, second = invoke(tiny_runs["explode"]), invoke(tiny_runs["explode"])
    assert first.exit_code == second.exit_code == 0
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2 and all(folder.name.startswith("compare-") for folder in folders)
    assert all((folder / "compare.csv").is_file() and (folder / "compare.pdf").is_file() for folder in folders)


def test_mixes_of_run_folders_and_parents(tiny_runs, tmp_path: Path) -> None:
    runs_folder = tiny_runs["explode"].parent
    # A sweep inside a folder of sweeps, a compare output (not a run) beside the runs.
    shutil.copytree(tiny_runs["clip_norm"], tmp_path / "outer" / "sweep" / "copied")
    (tmp_path / "outer" / "compare-x").mkdir()
    (tmp_path / "outer" / "compare-x" / "compare.csv").write_text("run\n")
    # The explode run named itself and through its parent is compared once.
    gathered = gather_runs([tiny_runs["explode"], runs_folder, tmp_path / "outer"])
    assert gathered.failures == []
    assert [run_record.path for run_record in gathered.runs] == [tiny_runs["explode"], *sorted(
        p for p in runs_folder.iterdir() if p != tiny_runs["explode"]), tmp_path / "outer" / "sweep" / "copied"]
    result = invoke(tiny_runs["clip_global"], tmp_path / "outer", "--out", tmp_path / "cmp", "--wide")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1 + 2 + 2  # header, two runs, the two files written


def test_partial_runs_say_n_a(tiny_runs, tmp_path: Path) -> None:
    unfinished = shutil.copytree(tiny_runs["clip_global"], tmp_path / "unfinished")
    (unfinished / "summary.json").unlink()
    older = shutil.copytree(tiny_runs["clip_global"], tmp_path / "older")
    summary = json.loads((older / "summary.json").read_text())
    for field in ("max_grad_norm", "clip_fraction", "test", "seconds"):
        del summary[field]
    (older / "summary.json").write_text(json.dumps(summary))
    original = json.loads((tiny_runs["clip_global"] / "summary.json").read_text())
    table = build_table(gather_runs([unfinished, older]).runs)
    incomplete, partial = row_of(table, unfinished), row_of(table, older)
    assert incomplete["status"] == "incomplete" and incomplete["best_dev/accuracy"] is None
    assert partial["status"] == "completed" and partial["test/accuracy"] is None and partial["seconds"] is None
    assert partial["best_dev/accuracy"] == original["best_dev"]["accuracy"]
    # What the summary lacks comes from metrics.csv, and equals what the runner had summarised.
    for row in (incomplete, partial):
        assert row["clip_fraction"] == pytest.approx(original["clip_fraction"])
        assert row["max_grad_norm/rnn_model.U"] == original["max_grad_norm"]["rnn_model.U"]
    assert incomplete["median_grad_norm/total"] == pytest.approx(original["median_grad_norm"]["total"], rel=1e-15)
    result = invoke(unfinished, older, "--out", tmp_path / "cmp")
    assert result.exit_code == 0 and "incomplete" in result.stdout and "n/a" in result.stdout


def test_norms_not_recorded_leave_the_explosion_unknown(tmp_path: Path, write_config) -> None:
    run_dir = run(load_config(write_config(train={**TINY_SRN["train"], "record_norms": False})), tmp_path).run_dir
    row = row_of(build_table(gather_runs([run_dir]).runs), run_dir)
    assert row["first_explosion_step"] is None and row["max_grad_norm/total"] is None


# Bad input -------------------------------------------------------------------------------------------------

def broken_run(tiny_runs, tmp_path: Path, file: str, content: str) -> Path:
    folder = shutil.copytree(tiny_runs["explode"], tmp_path / "broken")
    (folder / file).write_text(content)
    return folder


@pytest.mark.parametrize("make, message", [
    (lambda runs, tmp: tmp / "missing", "{path}: no such folder"),
    (lambda runs, tmp: (tmp / "empty").mkdir() or tmp / "empty",
     "{path}: is not a run folder (no summary.json or metrics.csv) and holds none"),
    (lambda runs, tmp: runs["explode"] / "summary.json", "{path}: is a file; expected a run folder"),
    (lambda runs, tmp: broken_run(runs, tmp, "metrics.csv", ""), "{path}/metrics.csv: is empty"),
    (lambda runs, tmp: broken_run(runs, tmp, "metrics.csv", "step,grad_norm/W\n1,abc\n"),
     "{path}/metrics.csv: column 'grad_norm/W' holds values that are not numbers"),
    (lambda runs, tmp: broken_run(runs, tmp, "metrics.csv", "\x00\x01garbage"),
     "{path}/metrics.csv: is not a gradexp metrics.csv"),
    (lambda runs, tmp: broken_run(runs, tmp, "summary.json", "{not json"), "{path}/summary.json: is not valid JSON"),
])
def test_bad_input_is_one_line_exit_2(tiny_runs, tmp_path: Path, make, message) -> None:
    path = make(tiny_runs, tmp_path)
    result = invoke(path, "--out", tmp_path / "cmp")
    assert result.exit_code == 2 and result.stdout == "" and one_line(result.stderr)
    assert result.stderr.startswith("error: " + message.format(path=path))
    assert not (tmp_path / "cmp").exists()


def test_no_arguments(tmp_path: Path) -> None:
    result = invoke()
    assert result.exit_code == 2 and one_line(result.stderr)
    assert result.stderr.startswith("error: RUN_DIR: none given")


def test_one_bad_run_is_skipped_and_the_rest_compared(tiny_runs, tmp_path: Path) -> None:
    broken = broken_run(tiny_runs, tmp_path, "metrics.csv", "")
    result = invoke(tiny_runs["clip_norm"], broken, tiny_runs["clip_global"], "--out", tmp_path / "cmp", "--wide")
    assert result.exit_code == 1 and one_line(result.stderr) and str(broken / "metrics.csv") in result.stderr
    compared = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert list(compared["run"]) == [tiny_runs["clip_norm"].name, tiny_runs["clip_global"].name]
    assert len(result.stdout.splitlines()) == 1 + 2 + 2
    # Every path bad: each one reported, nothing compared.
    result = invoke(broken, tmp_path / "missing", "--out", tmp_path / "none")
    assert result.exit_code == 2 and result.stderr.count("\n") == 2 and result.stdout == ""


# The shipped configs ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_shipped_srn_configs_compared(tmp_path: Path) -> None:
    folders = {name: run(load_config(CONFIGS / f"{name}.yaml"), tmp_path / "runs").run_dir
               for name in ("srn_explode", "srn_clip", "srn_clip_global")}
    result = invoke(tmp_path / "runs", "--out", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    print(result.stdout)
    written = pd.read_csv(tmp_path / "cmp" / "compare.csv").set_index("run")
    explode = written.loc[folders["srn_explode"].name]
    step, parameter = expected_explosion(folders["srn_explode"] / "metrics.csv", 100.0)
    assert (int(explode["first_explosion_step"]), explode["first_explosion_parameter"]) == (step, parameter)
    assert written.loc[folders["srn_clip"].name, "clip_fraction"] == pd.read_csv(
        folders["srn_clip"] / "metrics.csv")["clipped"].mean()
    assert list(written.columns[:5]) == ["path", "clip.mode", "clip.threshold", "clip.norm_type", "status"]
    table = build_table(gather_runs([tmp_path / "runs"]).runs)
    figure = comparison_figure(table)
    for axes in figure.axes:
        assert sorted(line.get_label() for line in axes.get_lines() if line.get_label() in table.labels) == sorted(
            table.labels)
    plt.close(figure)
