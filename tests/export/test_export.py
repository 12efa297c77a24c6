"""`gradexp export` (and run/sweep --tensorboard/--mlflow) read back with the real libraries' own readers:
TensorBoard's EventAccumulator and MLflow's MlflowClient, every value and step against the run's files.

Three real runs are trained once for the module (a completed one, a diverged one and one interrupted by
SIGINT) and one sqlite MLflow store is shared, since its first use migrates the database (seconds).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from gradexp import __version__
from gradexp.cli import main
from gradexp.recording.folder import flatten
from gradexp.runner import SilentReporter
from tests.conftest import TINY_SRN, merged, train_tiny

RUNS = {
    "completed": merged(TINY_SRN, {"clip": {"mode": "norm", "threshold": 0.5}}),
    "diverged": merged(TINY_SRN, {"optimizer": {"lr": 1e30}, "loss": {"reduction": "sum"},
                                  "train": {"epochs": 5, "flush_every": 7}}),
    "interrupted": merged(TINY_SRN, {"train": {"epochs": 4}}),
}
INTERRUPT_AT_STEP = 6
EVERY_SIZE = {"scalars": 0, "tensors": 0, "images": 0}
# MLflow's sqlite store keeps ±inf as the largest float.
LARGEST = np.finfo(np.float64).max


class InterruptAt(SilentReporter):
    """Sends this process SIGINT after a step, as Ctrl-C would: the runner stops there and saves."""

    def step_done(self, step: int) -> None:
        if step == INTERRUPT_AT_STEP:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The three run folders, by status, all in one runs/ folder."""
    root = tmp_path_factory.mktemp("export")
    folders = {}
    for status, config in RUNS.items():
        result = train_tiny(root, status, config, InterruptAt() if status == "interrupted" else None)
        assert result.summary.status == status
        folders[status] = result.run_dir
    return folders


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One sqlite MLflow store for the module (each test uses its own experiment in it)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def invoke(*args: Any):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def events(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance=EVERY_SIZE)
    accumulator.Reload()
    return accumulator


def expected_series(run_dir: Path) -> dict[str, pd.DataFrame]:
    """tag -> (step, value) read straight from the run's CSV files: metrics.csv's columns that hold a value,
    eval.csv's columns as dev/... and test/...."""
    metrics = pd.read_csv(run_dir / "metrics.csv")
    series = {column: metrics[["step", column]].rename(columns={column: "value"})
              for column in metrics.columns if column != "step" and metrics[column].notna().any()}
    evaluations = pd.read_csv(run_dir / "eval.csv") if (run_dir / "eval.csv").is_file() else pd.DataFrame()
    for split, rows in evaluations.groupby("split") if not evaluations.empty else []:
        for column in rows.columns.drop(["step", "epoch", "split"]):
            series[f"{split}/{column}"] = rows[["step", column]].rename(columns={column: "value"})
    return series


def same_values(actual: list[float], expected: np.ndarray, rounding: type) -> bool:
    expected = np.asarray(expected, dtype=rounding)
    actual = np.asarray(actual, dtype=rounding)
    return bool(np.array_equal(np.isnan(actual), np.isnan(expected))
                and np.allclose(actual[~np.isnan(actual)], expected[~np.isnan(expected)], rtol=1e-6, atol=0))


def test_tensorboard_holds_every_value_at_its_step(runs: dict[str, Path], tmp_path: Path) -> None:
    logdir = tmp_path / "tb"
    result = invoke("export", runs["completed"].parent, "--tensorboard", logdir)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3 and result.stderr == ""
    for status, run_dir in runs.items():
        assert f"exported {run_dir.name} ({status}) to TensorBoard {logdir}\n" in result.stdout
        accumulator = events(logdir / run_dir.name)
        expected = expected_series(run_dir)
        assert "sigma_max/rnn_model.U" in expected and "grad_norm/total" in expected and "loss" in expected
        for tag, frame in expected.items():
            scalars = accumulator.Scalars(tag)
            assert [event.step for event in scalars] == frame["step"].tolist(), tag
            assert same_values([event.value for event in scalars], frame["value"].to_numpy(), np.float32), tag
        summary = yaml.safe_load((run_dir / "summary.json").read_text())
        assert accumulator.Scalars("summary/steps")[0].value == summary["steps"]
        assert accumulator.Scalars("summary/max_grad_norm.total")[0].step == max(
            frame["step"].max() for frame in expected.values())
        status_text = accumulator.Tensors("status")[0].tensor_proto.string_val[0].decode()
        assert status_text.startswith(status)


def test_tensorboard_scalars_of_a_diverged_run_keep_its_non_finite_step(runs: dict[str, Path], tmp_path: Path) -> None:
    assert invoke("export", runs["diverged"], "--tensorboard", tmp_path).exit_code == 0
    accumulator = events(tmp_path / runs["diverged"].name)
    summary = yaml.safe_load((runs["diverged"] / "summary.json").read_text())
    last = accumulator.Scalars("grad_norm/total")[-1]
    assert last.step == summary["diverged_at_step"] and not math.isfinite(last.value)
    status = accumulator.Tensors("status")[0].tensor_proto.string_val[0].decode()
    assert status == f"diverged at step {summary['diverged_at_step']}"
    assert "summary/test.accuracy" not in accumulator.Tags()["scalars"]  # a diverged model has no test metric


def hparams_table(logdir: Path) -> Any:
    """The HParams dashboard's table of a log folder, as TensorBoard's own hparams backend computes it."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(logdir=str(logdir), data_provider=provider,
                                                            multiplexer=multiplexer))
    request = context.RequestContext()
    return backend.experiment_from_metadata(request, "", True, backend.hparams_metadata(request, ""),
                                            backend.hparams_from_data_provider(request, "", None))


def test_tensorboard_hparams_and_heatmap(runs: dict[str, Path], tmp_path: Path) -> None:
    assert invoke("export", runs["completed"], runs["interrupted"], "--tensorboard", tmp_path).exit_code == 0
    accumulator = events(tmp_path / runs["completed"].name)
    content = accumulator.SummaryMetadata("_hparams_/session_start_info").plugin_data
    assert content.plugin_name == "hparams"
    session = plugin_data_pb2.HParamsPluginData.FromString(content.content).session_start_info
    assert session.group_name == runs["completed"].name
    assert session.hparams["optimizer.lr"].number_value == 0.05
    assert session.hparams["clip.threshold"].number_value == 0.5
    assert session.hparams["clip.mode"].string_value == "norm"
    assert session.hparams["status"].string_value == "completed"
    assert session.hparams["train.patience"].string_value == "none"  # None, as --set writes it
    # No run names the table's columns (TensorBoard would take one run's for all): it is built from every run,
    # so the clip threshold that only the clipped run has is a column, typed, and so is each status.
    assert "_hparams_/experiment" not in accumulator.Tags()["tensors"]
    table = hparams_table(tmp_path)
    columns = {info.name: info for info in table.hparam_infos}
    configs = [flatten(yaml.safe_load((runs[status] / "config.yaml").read_text())) for status in ("completed",
                                                                                                 "interrupted")]
    assert set(columns) == {*configs[0], *configs[1], "status"}
    assert columns["clip.threshold"].domain_interval.min_value == 0.5
    assert set(columns["clip.mode"].domain_discrete) == {"norm", "none"}
    assert set(columns["status"].domain_discrete) == {"completed", "interrupted"}
    metrics = {info.name.tag for info in table.metric_infos}
    assert {"summary/test.accuracy", "summary/final_loss", "summary/max_grad_norm.total", "loss"} <= metrics
    [image] = accumulator.Images("time_grad/heatmap")
    assert image.encoded_image_string.startswith(b"\x89PNG") and image.width > 100 and image.height > 100


def test_tensorboard_export_twice_rewrites_the_folder(runs: dict[str, Path], tmp_path: Path) -> None:
    for _ in range(2):
        assert invoke("export", runs["completed"], "--tensorboard", tmp_path).exit_code == 0
    folder = tmp_path / runs["completed"].name
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    steps = [event.step for event in events(folder).Scalars("loss")]
    assert steps == pd.read_csv(runs["completed"] / "metrics.csv")["step"].tolist()


def mlflow_runs(store: str, experiment: str) -> dict[str, Any]:
    """The experiment's active runs by their run folder's name."""
    client = MlflowClient(tracking_uri=store)
    found = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return {Path(found_run.data.tags["gradexp.run_folder"]).name: found_run for found_run in found}


def test_mlflow_holds_params_metrics_tags_and_artifacts(runs: dict[str, Path], store: str) -> None:
    result = invoke("export", runs["completed"].parent, "--mlflow", store, "--experiment", "every-value")
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and len(result.stdout.splitlines()) == 3
    client = MlflowClient(tracking_uri=store)
    exported = mlflow_runs(store, "every-value")
    assert set(exported) == {run_dir.name for run_dir in runs.values()}
    states = {"completed": "FINISHED", "diverged": "FINISHED", "interrupted": "KILLED"}
    for status, run_dir in runs.items():
        found = exported[run_dir.name]
        config = flatten(yaml.safe_load((run_dir / "config.yaml").read_text()))
        assert found.data.params == {key: "none" if value is None else str(value) for key, value in config.items()}
        assert found.data.tags["gradexp.status"] == status and found.data.tags["gradexp.version"] == __version__
        assert found.data.tags["gradexp.run_folder"] == str(run_dir.resolve())
        assert found.info.run_name == run_dir.name and found.info.status == states[status]
        for tag, frame in expected_series(run_dir).items():
            history = sorted(client.get_metric_history(found.info.run_id, tag), key=lambda metric: metric.step)
            assert [metric.step for metric in history] == frame["step"].tolist(), tag
            expected = frame["value"].to_numpy(dtype=float)
            expected = np.where(np.isinf(expected), np.sign(expected) * LARGEST, expected)
            assert same_values([metric.value for metric in history], expected, np.float64), tag
        summary = yaml.safe_load((run_dir / "summary.json").read_text())
        assert found.data.metrics["summary/steps"] == summary["steps"]
        if status == "completed":
            assert found.data.metrics["summary/test.accuracy"] == summary["test"]["accuracy"]
        artifacts = {artifact.path for artifact in client.list_artifacts(found.info.run_id)}
        files = {path.name for path in run_dir.iterdir()} - {"best.pt", "last.pt"}
        assert artifacts == files and {"config.yaml", "metrics.csv", "summary.json", "loss.pdf"} <= artifacts


def test_mlflow_export_twice_replaces_the_run(runs: dict[str, Path], store: str) -> None:
    first = invoke("export", runs["completed"], "--mlflow", store, "--experiment", "twice")
    second = invoke("export", runs["completed"], "--mlflow", store, "--experiment", "twice")
    assert first.exit_code == second.exit_code == 0
    assert "(replaced)" not in first.stdout
    [found] = mlflow_runs(store, "twice").values()
    name = runs["completed"].name
    assert second.stdout == f"exported {name} (completed) to MLflow twice (replaced)\n"
    history = MlflowClient(tracking_uri=store).get_metric_history(found.info.run_id, "loss")
    assert len(history) == len(pd.read_csv(runs["completed"] / "metrics.csv"))


def test_mlflow_file_store(runs: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    # MLflow 3 refuses file stores unless asked for one this way; gradexp passes that decision on.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = (tmp_path / "mlruns").as_uri()
    result = invoke("export", runs["interrupted"], "--mlflow", store)
    assert result.exit_code == 0, result.output
    [found] = mlflow_runs(store, "gradexp").values()
    assert found.data.tags["gradexp.status"] == "interrupted" and found.data.params["optimizer.lr"] == "0.05"
    assert found.data.metrics["summary/steps"] == INTERRUPT_AT_STEP


def test_a_corrupt_metrics_csv_is_one_line_and_the_others_export(runs: dict[str, Path], tmp_path: Path,
                                                                 store: str) -> None:
    copies = tmp_path / "runs"
    for status in ("completed", "diverged"):
        shutil.copytree(runs[status], copies / runs[status].name)
    corrupt = copies / runs["diverged"].name / "metrics.csv"
    corrupt.write_text("step,grad_norm/W\n1,abc\n")
    result = invoke("export", copies, "--tensorboard", tmp_path / "tb", "--mlflow", store, "--experiment", "corrupt")
    assert result.exit_code == 1
    assert result.stderr == f"error: {corrupt}: column 'grad_norm/W' holds values that are not numbers\n"
    assert (tmp_path / "tb" / runs["completed"].name).is_dir()
    assert not (tmp_path / "tb" / runs["diverged"].name).exists()
    assert set(mlflow_runs(store, "corrupt")) == {runs["completed"].name}


@pytest.mark.parametrize("package, option, target", [("tensorboard", "--tensorboard", "tb"),
                                                     ("mlflow", "--mlflow", "sqlite:///unused.db")])
def test_a_missing_extra_is_one_line_before_any_training(package: str, option: str, target: str, runs, write_config,
                                                         tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # `import <package>` now fails, as when it is not installed
    expected = f"error: {option}: needs the {package} package: pip install 'gradexp[{package}]'\n"
    exported = invoke("export", runs["completed"], option, tmp_path / target if package == "tensorboard" else target)
    assert exported.exit_code == 2 and exported.output == expected
    trained = invoke("run", write_config(), "--out", tmp_path / "runs", option, target)
    assert trained.exit_code == 2 and trained.output == expected and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, expected", [
    ([], "error: --tensorboard/--mlflow: say where to export"),
    (["--tensorboard", "tb", "--experiment", "x"],
     "error: --experiment: names an MLflow experiment; it needs --mlflow"),
    (["--experiment", "x"], "error: --experiment: names an MLflow experiment; it needs --mlflow"),
    (["--tensorboard", "a-file"], "error: a-file: is a file; --tensorboard names a folder"),
    (["--mlflow", "sqlite:///no/such/folder/mlflow.db"], "error: --mlflow: sqlite:///no/such/folder/mlflow.db: no "
                                                         "folder 'no/such/folder' to hold the database"),
    (["--mlflow", "sqlite:////proc/mlflow.db"], "error: --mlflow: sqlite:////proc/mlflow.db: cannot open the database"),
    (["--mlflow", "bogus://x"], "error: --mlflow: bogus://x: not a tracking URI MLflow knows"),
    (["--mlflow", "mlruns"], "error: --mlflow: mlruns: MLflow keeps runs in a file store only with "
                             "MLFLOW_ALLOW_FILE_STORE=true set"),
    # nothing listens on port 1: a refused connection, said at once (MLflow alone retries for minutes)
    (["--mlflow", "http://127.0.0.1:1"], "error: --mlflow: http://127.0.0.1:1: cannot reach the tracking server "
                                         "(connection refused)"),
])
def test_option_errors(runs: dict[str, Path], args: list[str], expected: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    (tmp_path / "a-file").write_text("")
    result = invoke("export", runs["completed"], *args)
    assert result.exit_code == 2 and result.output.startswith(expected) and result.output.count("\n") == 1


def test_run_exports_when_it_ends(write_config, tmp_path: Path, store: str) -> None:
    result = invoke("run", write_config(), "--out", tmp_path / "runs", "--tensorboard", tmp_path / "tb",
                    "--mlflow", store, "--experiment", "at-run-time")
    assert result.exit_code == 0, result.output
    [run_dir] = (tmp_path / "runs").iterdir()
    assert [event.step for event in events(tmp_path / "tb" / run_dir.name).Scalars("loss")] == list(range(1, 11))
    [found] = mlflow_runs(store, "at-run-time").values()
    assert found.data.tags["gradexp.run_folder"] == str(run_dir.resolve())


def test_sweep_exports_every_run_into_one_experiment(write_config, tmp_path: Path, store: str) -> None:
    result = invoke("sweep", write_config(train={"epochs": 1}), "--grid", "optimizer.lr=0.05,0.1",
                    "--out", tmp_path / "runs", "--tensorboard", tmp_path / "tb", "--mlflow", store,
                    "--experiment", "sweep")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    finished_lines = [index for index, line in enumerate(lines) if "] finished: " in line]
    export_lines = [index for index, line in enumerate(lines) if line.startswith("  exported to TensorBoard ")]
    # each run is exported as it ends, a line under its own, before the next run's
    assert export_lines == [finished_lines[0] + 1, finished_lines[1] + 1]
    assert all(lines[index].endswith(", MLflow sweep") for index in export_lines)
    [sweep] = (tmp_path / "runs").iterdir()
    points = sorted(path.name for path in sweep.iterdir() if path.is_dir())
    assert len(points) == 2
    # inside a sweep a run is named after it: the same point of two sweeps stays two runs
    assert sorted(path.name for path in (tmp_path / "tb" / sweep.name).iterdir()) == points
    exported = mlflow_runs(store, "sweep")
    assert sorted(exported) == points
    assert {found.data.params["optimizer.lr"] for found in exported.values()} == {"0.05", "0.1"}
    assert {found.info.run_name for found in exported.values()} == {f"{sweep.name}/{point}" for point in points}


def test_mlflow_copies_of_run_files_are_not_exported_as_runs(runs: dict[str, Path], tmp_path: Path) -> None:
    # The sqlite store beside the runs keeps its artifacts, copies of the run folders' files, in mlartifacts/.
    shutil.copytree(runs["completed"], tmp_path / "runs" / runs["completed"].name)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for _ in range(3):
        result = invoke("export", tmp_path, "--mlflow", store)
        assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1, result.output
    assert any((tmp_path / "mlartifacts").rglob("metrics.csv"))
    assert list(mlflow_runs(store, "gradexp")) == [runs["completed"].name]
