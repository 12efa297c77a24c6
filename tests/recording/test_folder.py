"""RunFolder reads every run folder gradexp writes, this version's and those of earlier versions alike.

tests/fixtures/run_folders_da2445e/ holds the text files of two runs written by gradexp at commit da2445e (before
the recording package): a completed SRN run with norm clipping, and E2's MLP diverging in its first epoch.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gradexp.errors import DataError
from gradexp.recording.folder import RunFolder, flatten, read_metrics
from gradexp.recording.layout import MetricsColumns
from gradexp.recording.summary import RunSummary

OLD_RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "run_folders_da2445e"


@pytest.mark.parametrize("name", ["srn_norm_clip", "mlp_regression_explode"])
def test_a_run_folder_of_an_earlier_version_reads_as_it_was_written(name: str) -> None:
    folder = OLD_RUNS / name
    written = json.loads((folder / "summary.json").read_text())
    run = RunFolder.read(folder)
    # every key the old summary held reads back as the same value; the keys added since read as missing
    read = run.summary.to_json()
    assert {key: value for key, value in read.items() if key in written} == written
    assert {key: read[key] for key in set(read) - set(written)} == {"median_depth_ratio": None}
    assert run.config == flatten(yaml.safe_load((folder / "config.yaml").read_text()))
    pd.testing.assert_frame_equal(run.metrics, pd.read_csv(folder / "metrics.csv"))
    # the columns this version writes, without the measurements added since (record section), are those the
    # earlier one wrote
    assert list(run.metrics.columns) == MetricsColumns.of(run.parameters).header
    assert run.parameters == written["parameters"]


def test_the_diverged_run_of_an_earlier_version_has_no_test_metric() -> None:
    summary = RunFolder.read(OLD_RUNS / "mlp_regression_explode").summary
    assert summary.status == "diverged" and summary.diverged_at_step == 8
    assert summary.test_value is None and summary.best_dev_value is None and summary.final_loss is None


def test_this_versions_run_folder_round_trips(write_config, tmp_path: Path) -> None:
    from gradexp.config.loading import load_config
    from gradexp.runner import run

    result = run(load_config(write_config()), tmp_path)
    folder = RunFolder.read(result.run_dir)
    assert folder.summary == result.summary
    assert json.loads((result.run_dir / "summary.json").read_text()) == result.summary.to_json()


def test_a_partial_or_hand_edited_summary_reads_what_it_can(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({
        "status": "completed", "steps": "many", "test": {"accuracy": "high", "loss": 1.5}, "diverged": "no",
        "max_grad_norm": [1, 2], "parameters": ["W"], "unknown": 3}))
    summary = RunFolder.read(tmp_path).summary
    assert summary.status == "completed" and summary.steps is None and summary.diverged is False
    assert summary.test == {"accuracy": None, "loss": 1.5} and summary.max_grad_norm == {}
    assert summary.parameters == ["W"] and summary.seconds is None


@pytest.mark.parametrize("name, content, message", [
    ("summary.json", "{not json", "is not valid JSON"),
    ("summary.json", "[1, 2]", "is not a gradexp summary"),
    ("config.yaml", "- a list", "is not a gradexp config"),
    ("metrics.csv", "", "is empty"),
    ("metrics.csv", "a,b\n1,2\n", "is not a gradexp metrics.csv"),
    ("metrics.csv", "step,grad_norm/W,grad_norm/total\n1,x,2\n", "column 'grad_norm/W' holds values that are not"),
])
def test_a_corrupt_file_is_one_line_naming_it(tmp_path: Path, name: str, content: str, message: str) -> None:
    shutil.copytree(OLD_RUNS / "srn_norm_clip", tmp_path / "run")
    (tmp_path / "run" / name).write_text(content)
    with pytest.raises(DataError, match=message) as raised:
        RunFolder.read(tmp_path / "run")
    assert raised.value.path == str(tmp_path / "run" / name)


def test_an_unfinished_run_has_metrics_and_no_summary(tmp_path: Path) -> None:
    shutil.copytree(OLD_RUNS / "srn_norm_clip", tmp_path / "run")
    (tmp_path / "run" / "summary.json").unlink()
    run = RunFolder.read(tmp_path / "run")
    assert run.summary is None and len(run.metrics) == 3
    assert run.parameters == [c[len("grad_norm/"):] for c in run.metrics.columns
                              if c.startswith("grad_norm/") and c != "grad_norm/total"]


def test_read_metrics_keeps_empty_thresholds_missing() -> None:
    metrics = read_metrics(OLD_RUNS / "mlp_regression_explode" / "metrics.csv")
    assert metrics["clip_threshold"].isna().all()
    assert not math.isfinite(metrics["loss"].iloc[-1]) or not all(map(math.isfinite, metrics.iloc[-1, 4:-2]))


def test_summary_json_keys_are_the_records_fields_in_order() -> None:
    written = json.loads((OLD_RUNS / "srn_norm_clip" / "summary.json").read_text())
    keys = list(RunSummary.from_json(written).to_json())
    assert [key for key in keys if key in written] == list(written)  # the earlier version's keys, in its order
    assert [key for key in keys if key not in written] == ["median_depth_ratio"]
