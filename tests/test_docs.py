"""The docs against the code: every column they name exists (and every real column is named), README.md
stays under 10 KB, every relative link resolves, and every regenerated block names a scene of docs/regenerate.py."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from gradexp.cli import main
from gradexp.recording.layout import MetricsColumns, evaluation_columns, time_gradient_columns
from gradexp.recording.summary import RunSummary

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
LAYOUT = DOCS / "layout.md"
MARKDOWN = [README, *sorted(DOCS.glob("*.md"))]
README_LIMIT = 10 * 1024

COLUMNS_MARKER = re.compile(r"<!-- columns: (\S+) -->")
PLACEHOLDER = re.compile(r"<[^<>]+>")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^()\s]+)\)")


def documented_columns(name: str) -> list[str]:
    """The backticked names of the bullet list after `<!-- columns: NAME -->` in docs/layout.md."""
    lines = LAYOUT.read_text(encoding="utf-8").splitlines()
    starts = [index for index, line in enumerate(lines) if COLUMNS_MARKER.fullmatch(line.strip())
              and COLUMNS_MARKER.fullmatch(line.strip()).group(1) == name]
    assert len(starts) == 1, f"docs/layout.md needs exactly one `<!-- columns: {name} -->` list"
    names = []
    for line in lines[starts[0] + 1:]:
        if not line.strip() and not names:
            continue
        if line.startswith("- "):
            found = re.match(r"- `([^`]+)`", line)
            assert found, f"docs/layout.md, {name}: a bullet without a backticked column name: {line!r}"
            names.append(found.group(1))
        elif line.startswith("  ") and names:  # a bullet's continuation line
            continue
        else:
            break
    assert names, f"docs/layout.md: the `<!-- columns: {name} -->` marker has no bullet list after it"
    return names


def expanded(names: list[str], values: dict[str, list[str]]) -> list[str]:
    """Each documented name with its placeholders (`<parameter>`, ...) replaced by every real value."""
    result = []
    for name in names:
        placeholders = PLACEHOLDER.findall(name)
        unknown = [placeholder for placeholder in placeholders if placeholder not in values]
        assert not unknown, f"{name}: placeholder {unknown[0]} is not one of {sorted(values)}"
        if not placeholders:
            result.append(name)
            continue
        assert len(placeholders) == 1, f"{name}: one placeholder per column name"
        result += [name.replace(placeholders[0], value) for value in values[placeholders[0]]]
    return result


def assert_same_columns(file: str, documented: list[str], real: list[str]) -> None:
    undocumented = [column for column in real if column not in documented]
    missing = [column for column in documented if column not in real]
    assert not undocumented, f"{file}: columns the code writes but docs/layout.md does not name: {undocumented}"
    assert not missing, f"{file}: columns docs/layout.md names but the code does not write: {missing}"


def test_metrics_csv_columns_are_documented() -> None:
    parameters = ["embedding.weight", "rnn_model.W"]
    documented = expanded(documented_columns("metrics.csv"), {"<parameter>": parameters})
    assert_same_columns("metrics.csv", documented, MetricsColumns.of(parameters, parameters, update_ratios=True, depth_layers=parameters).header)


def test_time_grads_csv_columns_are_documented() -> None:
    documented = expanded(documented_columns("time_grads.csv"), {"<position>": ["1", "2", "3"]})
    assert_same_columns("time_grads.csv", documented, time_gradient_columns(3))


def test_eval_csv_columns_are_documented() -> None:
    documented = expanded(documented_columns("eval.csv"), {"<metric>": ["accuracy"]})
    assert_same_columns("eval.csv", documented, evaluation_columns("accuracy"))


def test_summary_json_keys_are_documented() -> None:
    real = [field.name for field in dataclasses.fields(RunSummary)]
    assert_same_columns("summary.json", documented_columns("summary.json"), real)


def header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return next(csv.reader(handle))


def test_sweep_csv_and_compare_csv_columns_are_documented(write_config, tmp_path: Path) -> None:
    config = write_config(train={"epochs": 1})
    swept = CliRunner().invoke(main, ["sweep", str(config), "--grid", "optimizer.lr=0.05,0.1", "--set",
                                      "train.epochs=1", "--out", str(tmp_path / "runs")])
    assert swept.exit_code == 0, swept.output
    [sweep] = (tmp_path / "runs").glob("sweep-*")
    runs = sorted(path for path in sweep.iterdir() if path.is_dir())
    summary = json.loads((runs[0] / "summary.json").read_text(encoding="utf-8"))
    compared = CliRunner().invoke(main, ["compare", str(sweep), "--out", str(tmp_path / "compared")])
    assert compared.exit_code == 0, compared.output

    grid_keys = ["optimizer.lr"]
    values = {"<grid key>": grid_keys, "<metric>": [summary["metric"]], "<parameter>": summary["plot_parameters"],
              # the config fields that differ between the runs: only the grid's here, which sweep.csv does not repeat
              "<config key>": []}
    assert_same_columns("sweep.csv", expanded(documented_columns("sweep.csv"), values), header(sweep / "sweep.csv"))
    values["<config key>"] = grid_keys
    assert_same_columns("compare.csv", expanded(documented_columns("compare.csv"), values),
                        header(tmp_path / "compared" / "compare.csv"))


def test_compare_groups_csv_columns_are_documented(tmp_path: Path) -> None:
    from tests.compare.test_groups import config, fake_run

    for mode in ("none", "norm", "value"):
        for seed in range(2):
            fake_run(tmp_path / "runs" / f"{mode}-{seed}", config(seed, mode), 0.1 + 0.01 * seed)
    compared = CliRunner().invoke(main, ["compare", str(tmp_path / "runs"), "--out", str(tmp_path / "compared")])
    assert compared.exit_code == 0, compared.output
    quantities = ["test/accuracy", "best_dev/accuracy", "final_loss", "first_explosion_step", "clip_fraction",
                  "max_grad_norm/total"]
    values = {"<group field>": ["clip.mode"], "<quantity>": quantities, "<metric>": ["accuracy"]}
    assert_same_columns("compare_groups.csv", expanded(documented_columns("compare_groups.csv"), values),
                        header(tmp_path / "compared" / "compare_groups.csv"))


def test_readme_is_at_most_10_kb() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; the limit is {README_LIMIT} (move text into docs/)"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation (backticks too) dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found = set()
    inside_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside_fence = not inside_fence
        elif not inside_fence and line.startswith("#"):
            found.add(github_anchor(line.lstrip("#")))
    return found


@pytest.mark.parametrize("document", MARKDOWN, ids=lambda path: str(path.relative_to(REPO)))
def test_relative_links_point_to_existing_files(document: Path) -> None:
    broken = []
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        destination = (document.parent / file).resolve() if file else document
        if not destination.exists():
            broken.append(target)
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{document.relative_to(REPO)}: broken links: {broken}"


def regenerate_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_regenerate", DOCS / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("docs_regenerate", module)
    spec.loader.exec_module(module)
    return module


def test_every_regenerated_block_names_a_scene() -> None:
    regenerate = regenerate_module()
    for document in MARKDOWN:
        text = document.read_text(encoding="utf-8")
        blocks = regenerate.find_blocks(document, text)  # raises on a block left open
        unknown = [block.scene for block in blocks if block.scene not in regenerate.SCENES]
        assert not unknown, f"{document.relative_to(REPO)}: no scene named {unknown} in docs/regenerate.py"
