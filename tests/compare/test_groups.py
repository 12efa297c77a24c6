"""Groups of runs in `gradexp compare` and `gradexp sweep --seeds`: which runs form a group, what each group's
summary holds, the baseline comparison, and the commands on tiny real runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from scipy import stats

from gradexp.cli import main
from gradexp.compare import build_table, format_groups, gather_runs, grouped_comparison
from gradexp.compare.group_figure import quartile_curves
from gradexp.errors import OptionError
from tests.conftest import TINY_SRN, merged


def fake_run(folder: Path, config: dict[str, Any], accuracy: Optional[float], status: str = "completed") -> Path:
    """A run folder written by hand: config.yaml, summary.json and a three-step metrics.csv."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    test = None if accuracy is None else {"accuracy": accuracy, "loss": 1.0}
    (folder / "summary.json").write_text(json.dumps({
        "status": status, "metric": "accuracy", "test": test, "best_dev": test, "steps": 3, "final_loss": 1.0,
        "clip_fraction": 0.5, "plot_parameters": ["W"]}))
    pd.DataFrame({"step": [1, 2, 3], "loss": [3.0, 2.0, 1.0], "grad_norm/W": [1.0, 2.0, 3.0],
                  "grad_norm/total": [1.0, 2.0, 3.0]}).to_csv(folder / "metrics.csv", index=False)
    return folder


def config(seed: int, mode: str = "none", lr: float = 0.1) -> dict[str, Any]:
    return {"clip": {"mode": mode}, "optimizer": {"lr": lr}, "train": {"seed": seed}}


def grouped_of(root: Path, **options):
    return grouped_comparison(build_table(gather_runs([root]).runs), **options)


def test_runs_that_differ_only_in_their_seed_form_one_group(tmp_path: Path) -> None:
    accuracies = {"none": [0.1, 0.12, 0.15], "norm": [0.31, 0.32, 0.36]}
    for mode, values in accuracies.items():
        for seed, value in enumerate(values):
            fake_run(tmp_path / f"{mode}-seed{seed}", config(seed, mode), value)
    grouped = grouped_of(tmp_path)
    assert grouped.by == ["clip.mode"] and [group.label for group in grouped.groups] == ["clip=none", "clip=norm"]
    assert [sorted(group.seeds) for group in grouped.groups] == [[0, 1, 2], [0, 1, 2]]
    summary = grouped.summaries["test/accuracy"][1]
    assert (summary.n, summary.missing) == (3, 0) and summary.mean == pytest.approx(0.33)
    found = grouped.differences[1]
    assert found.paired and found.p == pytest.approx(stats.ttest_rel([0.31, 0.32, 0.36], [0.1, 0.12, 0.15]).pvalue)
    assert grouped.verdicts == ["baseline", "better than the baseline"]


def test_a_field_that_differs_inside_splits_the_group_and_group_by_chooses(tmp_path: Path) -> None:
    for seed in range(2):
        for lr in (0.1, 0.2):
            fake_run(tmp_path / f"lr{lr}-seed{seed}", config(seed, lr=lr), 0.1 + lr)
    assert [group.label for group in grouped_of(tmp_path).groups] == ["lr=0.1", "lr=0.2"]
    # by a field all runs share: one group of four runs, the learning rates mixed
    together = grouped_of(tmp_path, by=["clip.mode"])
    assert len(together.groups) == 1 and len(together.groups[0].rows) == 4
    with pytest.raises(OptionError, match="--group-by: no run's config has 'clip.modes'"):
        grouped_of(tmp_path, by=["clip.modes"])


def test_missing_values_are_counted_and_shown(tmp_path: Path) -> None:
    for seed, value in enumerate([0.1, None, 0.2]):
        fake_run(tmp_path / f"a-seed{seed}", config(seed), value, "completed" if value else "diverged")
        fake_run(tmp_path / f"b-seed{seed}", config(seed, "norm"), 0.3)
    grouped = grouped_of(tmp_path)
    summary = grouped.summaries["test/accuracy"][0]
    assert (summary.n, summary.missing) == (2, 1)
    assert grouped.differences[1].n_group == 2  # seed 1's pair left the paired test
    text = format_groups(grouped)
    assert re.search(r"test accuracy\s+2\s+1\s", text)
    # a run that never passed the explosion threshold has no explosion step: said as such
    assert re.search(r"explode>100\s+0\s+3 \(3 never\)", text)
    assert grouped.verdicts[1].endswith("(1 of 3 baseline runs without a value)")


def test_the_baseline_by_number_or_label_and_holm_over_three_groups(tmp_path: Path) -> None:
    for mode, shift in (("none", 0.0), ("norm", 0.1), ("value", 0.2)):
        for seed in range(4):
            fake_run(tmp_path / f"{mode}-seed{seed}", config(seed, mode), 0.1 + shift + 0.01 * seed * (seed % 3))
    by_label = grouped_of(tmp_path, baseline="clip=norm")
    by_number = grouped_of(tmp_path, baseline="2")
    assert by_label.baseline == by_number.baseline == 1
    raw = [found.p for found in by_label.differences if found is not None]
    adjusted = [found.p_holm for found in by_label.differences if found is not None]
    smaller, larger = sorted(raw)
    assert sorted(adjusted) == [pytest.approx(min(1, 2 * smaller)), pytest.approx(max(min(1, 2 * smaller), larger))]
    with pytest.raises(OptionError, match="--baseline: no group 'clip=nope'; the groups are 1: clip=none"):
        grouped_of(tmp_path, baseline="clip=nope")


def test_quartile_curves_are_numpys_percentiles_per_step_without_non_finite_values() -> None:
    frames = [pd.DataFrame({"step": [1, 2, 3], "x": values}) for values in
              ([1.0, 2.0, np.inf], [2.0, 4.0, 5.0], [3.0, 8.0, 7.0], [4.0, 16.0, 9.0])]
    curves = quartile_curves(frames, "x")
    for step, column in ((1, [1, 2, 3, 4]), (2, [2, 4, 8, 16]), (3, [5, 7, 9])):
        for quartile in (0.25, 0.5, 0.75):
            assert curves.loc[step, quartile] == pytest.approx(np.percentile(column, 100 * quartile))
    assert quartile_curves(frames, "missing") is None


# The commands on tiny real runs --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def seeded_sweep(tmp_path_factory) -> tuple[Path, str]:
    """A sweep of clip.threshold=5,none with 3 seeds each, run through the CLI; its folder and its output."""
    root = tmp_path_factory.mktemp("seeds")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(merged(TINY_SRN, {"optimizer": {"lr": 0.2}, "loss": {"reduction": "sum"},
                                                     "clip": {"mode": "norm", "threshold": 5.0}})))
    result = CliRunner(env={"COLUMNS": "100"}).invoke(main, ["sweep", str(path), "--grid", "clip.threshold=5,none",
                                                             "--seeds", "3", "--vectorize", "--out", str(root)])
    assert result.exit_code == 0, result.output
    return next(root.glob("sweep-tiny-*")), result.output


def test_a_sweep_with_seeds_ends_with_the_grouped_table_and_writes_sweep_groups_csv(seeded_sweep) -> None:
    folder, output = seeded_sweep
    groups = pd.read_csv(folder / "sweep_groups.csv")
    runs = pd.read_csv(folder / "sweep.csv")
    assert list(groups["runs"]) == [3, 3] and len(runs) == 6
    for group, threshold in zip(groups.itertuples(), ("5", "none")):
        values = runs.loc[runs["clip.threshold"].astype(str).str.startswith(threshold), "test/accuracy"]
        assert getattr(group, "_" + str(list(groups.columns).index("test/accuracy/mean") + 1)) == \
            pytest.approx(values.mean())
    assert "2 group(s) by clip.mode" in output and "against the baseline #1" in output
    assert groups["verdict"].iloc[0] == "baseline" and isinstance(groups["verdict"].iloc[1], str)
    assert all(len(line) <= 100 for line in output.splitlines() if not line.startswith("["))


def test_compare_on_the_sweeps_runs_reproduces_its_grouped_table(seeded_sweep, tmp_path: Path) -> None:
    folder, output = seeded_sweep
    result = CliRunner(env={"COLUMNS": "100"}).invoke(main, ["compare", str(folder), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    grouped_text = output[output.index("2 group(s)"):].rstrip()
    assert result.output.startswith(grouped_text)
    assert (tmp_path / "compare_groups.csv").read_text() == (folder / "sweep_groups.csv").read_text()
    assert (tmp_path / "compare.pdf").read_bytes().startswith(b"%PDF")


def test_no_group_prints_a_row_per_run_and_refuses_group_options(seeded_sweep, tmp_path: Path) -> None:
    folder, _ = seeded_sweep
    runner = CliRunner(env={"COLUMNS": "100"})
    plain = runner.invoke(main, ["compare", str(folder), "--no-group", "--out", str(tmp_path / "a")])
    assert plain.exit_code == 0 and "group(s)" not in plain.output
    assert sum(line.startswith("00") for line in plain.output.splitlines()) == 6
    refused = runner.invoke(main, ["compare", str(folder), "--no-group", "--baseline", "2", "--out",
                                   str(tmp_path / "b")])
    assert refused.exit_code == 2 and "--baseline" in refused.output and "Traceback" not in refused.output


def test_x_draws_the_tested_means_against_a_numeric_field_one_line_per_other_setting(tmp_path: Path) -> None:
    from gradexp.compare.group_figure import check_x_field, group_figure

    for model, base in (("srn", 0.5), ("lstm", 0.8)):
        for length in (5, 10, 20):
            for seed in range(3):
                fake_run(tmp_path / f"{model}-{length}-seed{seed}",
                         {"data": {"length": length}, "model": {"name": model}, "train": {"seed": seed}},
                         base - 0.01 * length + 0.01 * seed)
    grouped = grouped_of(tmp_path)
    check_x_field(grouped, "data.length")
    figure = group_figure(grouped, "data.length")
    panel = next(axes for axes in figure.axes if axes.get_xlabel() == "data.length")
    lines = {container.get_label(): container.lines[0] for container in panel.containers}
    assert set(lines) == {"model=srn", "model=lstm"}
    assert list(lines["model=lstm"].get_xdata()) == [5, 10, 20]
    np.testing.assert_allclose(lines["model=lstm"].get_ydata(), [0.76, 0.71, 0.61])
    with pytest.raises(OptionError, match="--x: 'model.name' is not a number in every group"):
        check_x_field(grouped, "model.name")
    with pytest.raises(OptionError, match="--x: 'train.seed' is not a field the groups differ in"):
        check_x_field(grouped, "train.seed")


def test_holm_counts_only_the_comparisons_that_could_be_tested(tmp_path: Path) -> None:
    for seed in range(3):
        fake_run(tmp_path / f"none-{seed}", config(seed), 0.1 + 0.01 * seed)
        fake_run(tmp_path / f"norm-{seed}", config(seed, "norm"), 0.12 + 0.02 * seed)
        fake_run(tmp_path / f"value-{seed}", config(seed, "value"), None, "diverged")  # nothing to test
    grouped = grouped_of(tmp_path)
    tested = grouped.differences[1]
    assert tested.p is not None and tested.p_holm is None  # one test: nothing to adjust
    assert grouped.verdicts[2] == "too few runs to test (3 of 3 group runs without a value)"
    assert "Holm" not in format_groups(grouped)


@pytest.mark.parametrize("arguments, message", [
    (["--stats", ""], "--stats: names no column"),
    (["--stats", "clip.mode"], "--stats: no quantity 'clip.mode'; expected some of "),
    (["--no-group", "--test", "mannwhitney"], "--test: is for groups of runs; it cannot go with --no-group"),
    (["--no-group", "--ci", "bootstrap"], "--ci: is for groups of runs; it cannot go with --no-group"),
])
def test_group_options_that_cannot_apply_are_one_line_errors(tmp_path: Path, arguments: list[str],
                                                              message: str) -> None:
    for seed in range(2):
        fake_run(tmp_path / "runs" / f"a-{seed}", config(seed), 0.1 + 0.01 * seed)
    result = CliRunner().invoke(main, ["compare", str(tmp_path / "runs"), *arguments, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and message in result.output and len(result.output.splitlines()) == 1
