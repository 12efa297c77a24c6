"""The CLI through click's CliRunner on tiny configs: every command, every file read back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from gradexp.cli import main
from tests.conftest import CONFIGS


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def only_folder(parent: Path) -> Path:
    folders = [p for p in parent.iterdir() if p.is_dir()]
    assert len(folders) == 1
    return folders[0]


def test_run_writes_a_complete_folder_and_names_it(write_config, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = invoke("run", write_config(), "--out", out, "--set", "optimizer.lr=0.1", "--set", "clip.mode=norm",
                    "--set", "clip.threshold=0.5")
    assert result.exit_code == 0, result.output
    run_dir = only_folder(out)
    assert f"run folder: {run_dir}" in result.output and "status: completed" in result.output
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["optimizer"]["lr"] == 0.1 and resolved["clip"] == {"mode": "norm", "threshold": 0.5,
                                                                       "norm_type": 2.0}
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert len(metrics) == 10 and (metrics["clip_threshold"] == 0.5).all()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 10 and summary["clip"]["mode"] == "norm"
    assert f"test accuracy: {summary['test']['accuracy']:.4g}" in result.output
    evaluations = pd.read_csv(run_dir / "eval.csv")
    assert set(evaluations["split"]) == {"dev", "test"}
    for name in ("grad_norms.pdf", "loss.pdf", "best.pt"):
        assert (run_dir / name).stat().st_size > 0


def test_validate_prints_the_resolved_config(write_config) -> None:
    result = invoke("validate", write_config(), "--set", "train.epochs=7")
    assert result.exit_code == 0
    resolved = yaml.safe_load(result.output)
    assert resolved["train"]["epochs"] == 7 and resolved["optimizer"]["momentum"] == 0.0


@pytest.mark.parametrize("args, expected", [
    (["--set", "optimizer.lr=-1"], "optimizer.lr (from --set): expected a value > 0, got -1"),
    (["--set", "clip.mode=nrom"], "clip.mode (from --set): unknown clip mode 'nrom' (did you mean 'norm'?)"),
    (["--set", "lr"], "--set lr: overrides must be in the form section.key=value"),
])
def test_config_errors_are_one_line_exit_2_and_leave_no_folder(write_config, tmp_path: Path, args, expected) -> None:
    path = write_config()
    out = tmp_path / "runs"
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(out), *args])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {path}: {expected}") and result.output.count("\n") == 1
    assert not out.exists()


def test_missing_config_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "nope.yaml: no such file" in result.output and "Traceback" not in result.output


def test_plot_replots_with_choices(write_config, tmp_path: Path) -> None:
    invoke("run", write_config(), "--out", tmp_path / "runs")
    metrics = only_folder(tmp_path / "runs") / "metrics.csv"
    target = tmp_path / "wub.pdf"
    result = invoke("plot", metrics, "-o", target, "--params", "W,U,b", "--steps", "5", "--log-y")
    assert result.exit_code == 0 and result.output == f"wrote {target}\n"
    assert target.read_bytes().startswith(b"%PDF")


def test_plot_figure_has_one_line_per_parameter(write_config, tmp_path: Path, monkeypatch) -> None:
    import matplotlib.pyplot as plt

    from gradexp.plotting import runs as run_plots
    from gradexp.recording.folder import read_metrics

    invoke("run", write_config(), "--out", tmp_path / "runs")
    metrics = read_metrics(only_folder(tmp_path / "runs") / "metrics.csv")
    figures = []
    monkeypatch.setattr(run_plots, "save_figure", lambda figure, path: figures.append(figure))
    run_plots.plot_grad_norms(metrics, tmp_path / "x.pdf", ["rnn_model.W", "rnn_model.U", "rnn_model.b"], steps=4)
    lines = figures[0].axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["W", "U", "b"]
    assert all(len(line.get_xdata()) == 4 for line in lines)
    plt.close("all")


@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    ("", "is empty"),
    ("a,b\n1,2\n", "is not a gradexp metrics.csv"),
    ("step,grad_norm/W\n1,abc\n", "column 'grad_norm/W' holds values that are not numbers"),
])
def test_plot_bad_input_is_one_line(tmp_path: Path, content, expected) -> None:
    path = tmp_path / "metrics.csv"
    if content is not None:
        path.write_text(content)
    result = CliRunner().invoke(main, ["plot", str(path)])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and expected in result.output and "Traceback" not in result.output


def test_plot_unknown_parameter(write_config, tmp_path: Path) -> None:
    invoke("run", write_config(), "--out", tmp_path / "runs")
    result = CliRunner().invoke(main, ["plot", str(only_folder(tmp_path / "runs") / "metrics.csv"), "--params", "V"])
    assert result.exit_code == 2 and "no parameter 'V'" in result.output


def test_every_command_has_help_with_an_example() -> None:
    for name, command in main.commands.items():
        result = invoke(name, "--help")
        assert result.exit_code == 0 and "Example:" in result.output, name


def test_run_prints_no_progress_bar_label_where_stderr_is_not_a_terminal(write_config, tmp_path: Path) -> None:
    # click's bar prints its bare label once where it cannot redraw: a stray "training" line in a log.
    result = invoke("run", write_config(), "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("status: completed")


def test_run_with_a_threshold_of_none_trains_without_clipping(tmp_path: Path) -> None:
    result = invoke("run", CONFIGS / "srn_clip.yaml", "--set", "clip.threshold=none", "--set", "train.epochs=1",
                    "--out", tmp_path)
    assert result.exit_code == 0, result.output
    run_dir = only_folder(tmp_path)
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["clip"] == {"mode": "none"}
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["clip_threshold"].isna().all() and (metrics["clipped"] == 0).all()


# scipy: its statistics import in about 0.7 s, so only a comparison with groups of several runs loads it
HEAVY_MODULES = ("torch", "sklearn", "matplotlib", "pandas", "ray", "scipy", "tensorboard", "mlflow")
FIXTURE_RUNS = Path(__file__).parents[1] / "fixtures" / "run_folders_da2445e"


def imported_by_command(arguments: list[str]) -> list[str]:
    """The heavy modules in the command's own process once it has finished (a run's figures are drawn in
    another process, started before torch is imported)."""
    code = ("import json, sys; from gradexp.cli import main\n"
            f"sys.argv = ['gradexp', *{arguments!r}]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps(sorted(name for name in {HEAVY_MODULES!r} if name in sys.modules)))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
@pytest.mark.parametrize("command, expected", [
    ("--help", []),
    ("sweep --help", []),
    ("plot", ["matplotlib", "pandas"]),
    ("compare", ["matplotlib", "pandas"]),
    ("validate srn", ["torch"]),
    ("validate mlp", ["pandas", "scipy", "sklearn", "torch"]),  # its data come from scikit-learn (pandas, scipy)
    ("run", ["torch"]),
    ("compare seeds", ["matplotlib", "pandas", "scipy"]),
    ("export --help", []),
    # tensorboard's own writer, not torch.utils.tensorboard (which imports torch); matplotlib draws the heatmaps
    ("export --tensorboard", ["matplotlib", "pandas", "tensorboard"]),
])
def test_each_command_imports_only_the_heavy_modules_it_uses(command: str, expected: list[str], write_config,
                                                             tmp_path: Path) -> None:
    arguments = {
        "--help": ["--help"],
        "sweep --help": ["sweep", "--help"],
        "plot": ["plot", str(FIXTURE_RUNS / "srn_norm_clip" / "metrics.csv"), "-o", str(tmp_path / "replot.pdf")],
        "compare": ["compare", *map(str, sorted(FIXTURE_RUNS.iterdir())), "--out", str(tmp_path / "compared")],
        "validate srn": ["validate", str(CONFIGS / "srn_explode.yaml")],
        "validate mlp": ["validate", str(CONFIGS / "mlp_regression_explode.yaml")],
        "run": ["run", str(write_config()), "--out", str(tmp_path / "runs")],
        # copies of a run: one group of three, summarised with scipy's t distribution
        "compare seeds": ["compare", str(tmp_path / "copies"), "--out", str(tmp_path / "compared")],
        "export --help": ["export", "--help"],
        "export --tensorboard": ["export", *map(str, sorted(FIXTURE_RUNS.iterdir())), "--tensorboard", str(tmp_path)],
    }[command]
    if command == "compare seeds":
        for copy in range(3):
            copied = shutil.copytree(FIXTURE_RUNS / "srn_norm_clip", tmp_path / "copies" / f"srn_norm_clip-{copy}")
            summary = json.loads((copied / "summary.json").read_text())
            # three values that differ: a spread, so an interval from the t distribution
            summary["test"]["accuracy"] += 0.01 * copy
            (copied / "summary.json").write_text(json.dumps(summary))
    assert imported_by_command(arguments) == expected
    if command == "run":  # the figures were drawn all the same
        assert len(list((tmp_path / "runs").glob("*/loss.pdf"))) == 1


def test_run_without_a_config_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    assert result.output == ("error: CONFIG: give a CONFIG to start a run, or --resume RUN_DIR to continue one "
                             "(not both)\n")


@pytest.mark.parametrize("metric, message", [
    ("max_grad_norm/nonsense", "no column 'max_grad_norm/nonsense'; they will have max_grad_norm/rnn_model.W, "),
    ("test/mse", "no column 'test/mse'; they will have test/loss, test/accuracy"),
])
def test_sweep_refuses_a_metric_column_its_runs_will_not_have_before_training(write_config, tmp_path: Path, metric,
                                                                              message: str) -> None:
    result = CliRunner().invoke(main, ["sweep", str(write_config()), "--grid", "optimizer.lr=0.1,0.2",
                                       "--metric", metric, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and message in result.output and len(result.output.splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written
