"""Every bad input is one line on stderr naming the file and key, exit code 2, no traceback, no run folder.

The table drives the real CLI (`gradexp run`) through click's CliRunner; the property-based tests
feed random YAML documents and random --set strings to the config loader and accept no failure
other than a ConfigError.
"""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradexp.cli import main
from gradexp.clipping import CLIP_MODES
from gradexp.config.loading import apply_overrides, config_from_dict, load_config, parse_yaml
from gradexp.config.schema import SECTION_NAMES, ExperimentConfig, plain_section_keys
from gradexp.data import DATASETS
from gradexp.errors import ConfigError, DataError, GradexpError, OptionError, OutputError
from gradexp.models import MODELS
from gradexp.optim import OPTIMIZERS
from gradexp.sweep import plan_sweep
from tests.conftest import TINY_SRN, merged


def one_of(registry) -> str:
    return "expected one of " + ", ".join(registry.names())


# (case, config: a dict of section changes to TINY_SRN or the file's raw text, --set overrides, expected message
# after "error: <config path>: ").
BAD_INPUTS: list[tuple[str, dict[str, Any] | str, list[str], str]] = [
    ("malformed YAML", "data:\n  name: digit_sum\n model: srn\n", [],
     "invalid YAML at line 3, column 2: expected <block end>, but found '<block mapping start>'"),
    ("unclosed bracket", "data: {name: digit_sum\nmodel: {name: srn}\n", [],
     "invalid YAML at line 2, column 6: expected ',' or '}', but got ':'"),
    ("empty file", "", [], "the file is empty; expected a mapping with sections"),
    ("only comments", "# nothing here\n", [], "the file is empty"),
    ("top-level list", "- data\n- model\n", [], "expected a mapping of sections at the top level, got a list"),
    ("top-level number", "42\n", [], "expected a mapping of sections at the top level, got a number"),
    ("unknown section", {"optimiser": {"name": "sgd"}}, [], "optimiser: unknown section (did you mean 'optimizer'?)"),
    ("unknown train key", {"train": {"epoch": 3}}, [], "train.epoch: unknown key (did you mean 'epochs'?)"),
    ("unknown model key", {"model": {"hidden": 3}}, [],
     "model.hidden: not a setting of model 'srn' (did you mean 'hidden_size'?)"),
    ("section not a mapping", yaml.safe_dump({**TINY_SRN, "train": 5}), [], "train: expected a mapping, got a number"),
    ("missing section", "data: {name: digit_sum}\noptimizer: {name: sgd, lr: 0.1}\n", [],
     "model: missing section; expected a mapping with a 'name' key"),
    ("lr a string", {"optimizer": {"lr": "fast"}}, [], "optimizer.lr: expected a number, got 'fast'"),
    ("epochs a list", {"train": {"epochs": [1, 2]}}, [], "train.epochs: expected an integer, got [1, 2]"),
    ("shuffle a number", {"train": {"shuffle": 1}}, [], "train.shuffle: expected true or false, got 1"),
    ("lr zero", {"optimizer": {"lr": 0}}, [], "optimizer.lr: expected a value > 0, got 0"),
    ("lr negative", {"optimizer": {"lr": -0.1}}, [], "optimizer.lr: expected a value > 0, got -0.1"),
    ("lr nan", {"optimizer": {"lr": float("nan")}}, [], "optimizer.lr: expected a number, got nan"),
    ("norm threshold zero", {"clip": {"mode": "norm", "threshold": 0}}, [], "clip.threshold: expected a value > 0, got 0"),
    ("value threshold negative", {"clip": {"mode": "value", "threshold": -5}}, [],
     "clip.threshold: expected a value > 0, got -5"),
    ("global_norm threshold zero", {"clip": {"mode": "global_norm", "threshold": 0.0}}, [],
     "clip.threshold: expected a value > 0, got 0"),
    ("agc threshold zero", {"clip": {"mode": "agc", "threshold": 0}}, [], "clip.threshold: expected a value > 0, got 0"),
    ("threshold missing", {"clip": {"mode": "norm"}}, [], "clip.threshold: required by clip mode 'norm'; expected a number"),
    ("threshold for a mode without one", {"clip": {"mode": "none", "threshold": 5}}, [],
     "clip.threshold: not a setting of clip mode 'none'; expected no other keys"),
    ("norm_type 3", {"clip": {"mode": "global_norm", "threshold": 1, "norm_type": 3}}, [],
     "clip.norm_type: expected one of 1, 2, inf, got 3"),
    ("norm_type 0", {"clip": {"mode": "norm", "threshold": 1, "norm_type": 0}}, [],
     "clip.norm_type: expected one of 1, 2, inf, got 0"),
    ("norm_type a word", {"clip": {"mode": "norm", "threshold": 1, "norm_type": "two"}}, [],
     "clip.norm_type: expected a number, got 'two'"),
    ("batch_size zero", {"train": {"batch_size": 0}}, [], "train.batch_size: expected a value >= 1, got 0"),
    ("batch_size above the training set", {"train": {"batch_size": 301}}, [],
     "train.batch_size: expected at most the training set's size 300, got 301"),
    ("epochs zero", {"train": {"epochs": 0}}, [], "train.epochs: expected a value >= 1, got 0"),
    ("unknown model", {"model": {"name": "transformer"}}, [], f"model.name: unknown model 'transformer'; {one_of(MODELS)}"),
    ("unknown dataset", {"data": {"name": "digitsum"}}, [],
     f"data.name: unknown dataset 'digitsum' (did you mean 'digit_sum'?); {one_of(DATASETS)}"),
    ("unknown optimizer", {"optimizer": {"name": "adamw"}}, [],
     f"optimizer.name: unknown optimizer 'adamw' (did you mean 'adam'?); {one_of(OPTIMIZERS)}"),
    ("unknown clip mode", {"clip": {"mode": "clip_norm"}}, [],
     f"clip.mode: unknown clip mode 'clip_norm' (did you mean 'norm'?); {one_of(CLIP_MODES)}"),
    ("--set without =", {}, ["--set", "optimizer.lr"], "--set optimizer.lr: overrides must be in the form section.key=value"),
    ("--set without a section", {}, ["--set", "lr=0.1"], "--set lr=0.1: overrides must be in the form section.key=value"),
    ("--set with an empty name", {}, ["--set", "=3"], "--set =3: overrides must be in the form section.key=value"),
    ("--set naming no key", {}, ["--set", "train.epochz=3"],
     "train.epochz (from --set): unknown key (did you mean 'epochs'?)"),
    ("--set naming no section", {}, ["--set", "trian.epochs=3"],
     "--set trian.epochs=3: unknown section 'trian' (did you mean 'train'?)"),
    ("--set with a bad value", {}, ["--set", "optimizer.lr=fast"], "optimizer.lr (from --set): expected a number, got 'fast'"),
    ("missing data folder", {"data": {"path": "/no/such/folder"}}, [], "data.path: /no/such/folder: no such folder"),
    ("missing data folder from --set", {}, ["--set", "data.path=/no/such/folder"],
     "data.path: /no/such/folder: no such folder"),
]


def invoke(*args: Any):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, expected_start: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {expected_start}"), result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n")
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("case, config, overrides, expected", BAD_INPUTS, ids=[row[0] for row in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_no_run_folder(tmp_path: Path, case, config, overrides, expected) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(merged(TINY_SRN, config), sort_keys=False))
    out = tmp_path / "runs"
    result = invoke("run", path, "--out", out, *overrides)
    assert_one_line_error(result, f"{path}: {expected}")
    assert not out.exists()


def test_cuda_asked_for_without_cuda(write_config, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = write_config(train={"device": "cuda"})
    result = invoke("run", path, "--out", tmp_path / "runs")
    assert_one_line_error(result, f"{path}: train.device: cuda was asked for but this machine has no CUDA device")
    assert not (tmp_path / "runs").exists()


def test_data_folder_missing_a_file(write_config, tmp_path: Path) -> None:
    from gradexp.data.digit_sum import write_dataset

    folder = tmp_path / "digits"
    write_dataset(folder, length=5, seed=0)
    (folder / "test.txt").unlink()
    path = write_config(data={"path": str(folder)})
    result = invoke("run", path, "--out", tmp_path / "runs")
    assert_one_line_error(result, f"{path}: data.path: {folder / 'test.txt'}: no such file")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("name, content, expected", [
    ("absent.yaml", None, "no such file"),
    ("", None, "is a folder, expected a YAML file"),
    ("latin1.yaml", b"data: {name: caf\xe9}\n", "cannot be read ("),
])
def test_unreadable_config_file(tmp_path: Path, name: str, content: bytes | None, expected: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = invoke("run", path, "--out", tmp_path / "runs")
    assert_one_line_error(result, f"{path}: {expected}")
    assert not (tmp_path / "runs").exists()


def test_out_under_a_regular_file(write_config, tmp_path: Path) -> None:
    """Tests run as root, for whom permissions do not block writes; a path through a file cannot be made by anyone."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    for out in (blocker / "runs", blocker):
        result = invoke("run", write_config(), "--out", out)
        assert_one_line_error(result, f"{out}: cannot create a run folder here (")
    assert blocker.read_text() == "not a folder\n"


def test_full_disk_is_one_line(write_config, tmp_path: Path, monkeypatch) -> None:
    def disk_full(descriptor: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", disk_full)
    result = invoke("run", write_config(), "--out", tmp_path / "runs")
    assert_one_line_error(result, f"{tmp_path / 'runs'}")
    assert result.stderr.rstrip().endswith("metrics.csv: cannot be written (No space left on device)")


@pytest.mark.parametrize("setup, expected", [
    ("absent", "no such run folder"),
    ("empty", "holds no last.pt: not a gradexp run folder, or the run stopped before it started training"),
    ("completed", "this run has already completed (see summary.json); nothing to resume"),
    ("garbage", "last.pt: cannot be read as a gradexp resume point ("),
])
def test_resume_refusals(write_config, tmp_path: Path, setup: str, expected: str) -> None:
    run_dir = tmp_path / "run"
    if setup in ("empty", "garbage"):
        run_dir.mkdir()
    if setup == "garbage":
        (run_dir / "last.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    if setup == "completed":
        assert invoke("run", write_config(), "--out", tmp_path / "runs").exit_code == 0
        (run_dir,) = (tmp_path / "runs").iterdir()
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.iterdir()) if run_dir.exists() else None
    result = invoke("run", "--resume", run_dir)
    assert_one_line_error(result, f"{run_dir}")
    assert expected in result.stderr
    assert (sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.iterdir()) if run_dir.exists() else None) == before


@pytest.mark.parametrize("override", ["trai\nn.epochs=3", "train\r.epochs=3", "train.epochs=\n- 1\n- 2"])
def test_messages_echoing_line_breaks_stay_one_line(write_config, tmp_path: Path, override: str) -> None:
    result = invoke("run", write_config(), "--out", tmp_path / "runs", "--set", override)
    assert_one_line_error(result, f"{tmp_path / 'tiny.yaml'}: ")


def test_resume_takes_no_config_or_overrides(write_config, tmp_path: Path) -> None:
    for args in (["run"], ["run", write_config(), "--resume", tmp_path], ["run", "--resume", tmp_path, "--set", "a.b=1"]):
        result = invoke(*args)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")


# Property-based: whatever the document or override, the loader either returns a config or raises ConfigError.

NAMES = st.sampled_from(
    list(SECTION_NAMES) + plain_section_keys("train") + plain_section_keys("plot")
    + ["name", "mode", "lr", "threshold", "norm_type", "reduction", "momentum", "length", "hidden_size", "path"]
    + MODELS.names() + DATASETS.names() + OPTIMIZERS.names() + CLIP_MODES.names() + ["inf", "none", "cuda", "cpu"]
)
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**1030) | st.floats() | st.text(max_size=6)
           | NAMES)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES | st.text(max_size=3),
                                                                                          inner, max_size=4),
                      max_leaves=10)
# A valid config with some sections and keys replaced by random values: close enough to pass the early checks.
MUTATIONS = st.dictionaries(st.sampled_from(SECTION_NAMES), st.dictionaries(NAMES, VALUES, max_size=3) | VALUES,
                            max_size=3)
OVERRIDE_TEXT = st.text(max_size=30) | st.builds(
    lambda section, key, value: f"{section}.{key}={value}",
    st.sampled_from(SECTION_NAMES) | st.text(max_size=5), NAMES | st.text(max_size=5),
    st.text(max_size=12) | VALUES.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()),
)
LOADER_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def loads_or_config_error(load) -> None:
    try:
        assert isinstance(load(), ExperimentConfig)
    except ConfigError as failure:
        assert str(failure)


@LOADER_SETTINGS
@given(st.text(max_size=200) | st.dictionaries(NAMES | st.text(max_size=4), VALUES, max_size=6).map(yaml.safe_dump))
def test_random_yaml_documents_fail_only_with_config_errors(document: str) -> None:
    loads_or_config_error(lambda: config_from_dict(parse_yaml(document, "random.yaml"), source="random.yaml",
                                                   name="random"))


@LOADER_SETTINGS
@given(MUTATIONS)
def test_mutated_configs_fail_only_with_config_errors(mutation: dict[str, Any]) -> None:
    document = yaml.safe_dump({section: body for section, body in TINY_SRN.items()} | mutation)
    loads_or_config_error(lambda: config_from_dict(parse_yaml(document, "mutated.yaml"), source="mutated.yaml",
                                                   name="mutated"))


@LOADER_SETTINGS
@given(st.lists(OVERRIDE_TEXT, max_size=4))
def test_random_overrides_fail_only_with_config_errors(overrides: list[str]) -> None:
    def load() -> ExperimentConfig:
        raw, overridden = apply_overrides(TINY_SRN, overrides, "tiny.yaml")
        return config_from_dict(raw, source="tiny.yaml", name="tiny", overridden=overridden)

    loads_or_config_error(load)


def test_load_config_reads_overrides_through_the_same_checks(write_config) -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs \(from --set\): expected a value >= 1, got 0"):
        load_config(write_config(), ["train.epochs=0"])


@pytest.mark.parametrize("error", [ConfigError("a.yaml", "optimizer.lr", "expected a number"),
                                   ConfigError("", "--jobs", "expected at least 1"),
                                   DataError("runs/x/metrics.csv", "no such file"),
                                   OutputError("runs/x", "cannot be written"),
                                   OptionError("--metric", "expected one of test, best_dev, got 'f1'")])
def test_errors_cross_process_boundaries_unchanged(error: GradexpError) -> None:
    # what a worker process's error goes through on its way back (drawing.plot_runs)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_an_option_mistake_names_the_option_alone_in_one_line_with_exit_2(write_config, tmp_path: Path) -> None:
    config = write_config()
    with pytest.raises(OptionError) as raised:
        plan_sweep(config, [], ["optimizer.lr=0.1,0.2"], 1, metric="acuracy")
    assert (raised.value.option, raised.value.exit_code) == ("--metric", 2)
    assert str(raised.value).startswith("--metric: expected one of ") and str(config) not in str(raised.value)
    result = invoke("sweep", config, "--grid", "optimizer.lr=0.1,0.2", "--metric", "acuracy", "--out", tmp_path)
    assert_one_line_error(result, "--metric: expected one of ")
    assert result.stderr == f"error: {raised.value}\n"
    assert not list(tmp_path.glob("sweep-*"))
