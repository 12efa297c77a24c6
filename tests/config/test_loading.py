"""Config loading: typed values, defaults, overrides, and one clear line for every mistake."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from gradexp.config.loading import apply_overrides, config_from_dict, load_config, parse_yaml
from gradexp.errors import ConfigError
from gradexp.sweep.grid import expand, parse_axis, point_config
from tests.conftest import CONFIGS


def test_shipped_configs_all_load() -> None:
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert len(paths) >= 3
    for path in paths:
        config = load_config(path)
        assert config.name == path.stem


def test_srn_explode_is_e1() -> None:
    config = load_config(CONFIGS / "srn_explode.yaml")
    assert config.optimizer.name == "sgd" and config.optimizer.params["lr"] == 0.2
    assert config.optimizer.params["momentum"] == 0.0
    assert config.loss.params["reduction"] == "sum" and config.clip.name == "none"
    assert (config.train.epochs, config.train.batch_size, config.train.eval_every) == (50, 64, 100)
    assert config.data.params["length"] == 20
    assert (config.model.params["input_size"], config.model.params["hidden_size"]) == (32, 32)
    clip = load_config(CONFIGS / "srn_clip.yaml").clip
    assert (clip.name, clip.params["threshold"], clip.params["norm_type"]) == ("norm", 5.0, 2.0)
    global_clip = load_config(CONFIGS / "srn_clip_global.yaml").clip
    assert (global_clip.name, global_clip.params["threshold"], global_clip.params["norm_type"]) == ("global_norm", 6.0, 1.0)


def test_defaults_fill_the_resolved_config_and_round_trip(write_config) -> None:
    config = load_config(write_config())
    resolved = config.to_dict()
    assert resolved["optimizer"] == {"name": "sgd", "lr": 0.05, "momentum": 0.0, "weight_decay": 0.0, "nesterov": False}
    assert resolved["schedule"] == {"name": "none"} and resolved["train"]["device"] == "cpu"
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(resolved)), source="x", name=config.name)
    assert again.to_dict() == resolved


def test_overrides_are_typed_by_yaml(write_config) -> None:
    config = load_config(write_config(), ["optimizer.lr=0.5", "clip.mode=global_norm", "clip.threshold=6",
                                          "clip.norm_type=inf", "train.shuffle=false", "plot.params=[W, U]"])
    assert config.optimizer.params["lr"] == 0.5
    assert config.clip.params == {"threshold": 6.0, "norm_type": math.inf}
    assert config.train.shuffle is False and config.plot.params == ["W", "U"]


def test_none_override_clears_an_optional_value(write_config) -> None:
    config = load_config(write_config(plot={"steps": 40}), ["plot.steps=none"])
    assert config.plot.steps is None


def test_none_override_of_a_component_name_picks_the_none_component(write_config) -> None:
    # `--set clip.mode=none` is the --help example: `none` is a registered name there, not null.
    config = load_config(write_config(schedule={"name": "exponential"}), ["clip.mode=none", "schedule.name=none"])
    assert config.clip.name == "none" and config.schedule.name == "none"


BAD_CONFIGS = [
    ({"optimizer": {"lr": "fast"}}, "optimizer.lr", "expected a number, got 'fast'"),
    ({"optimizer": {"lr": 0}}, "optimizer.lr", "expected a value > 0"),
    ({"optimizer": {"name": "adamw"}}, "optimizer.name", "unknown optimizer 'adamw' (did you mean 'adam'?); expected one of adam, rmsprop, sgd"),
    ({"optimizer": {"momentum": 1.5}}, "optimizer.momentum", "expected a value < 1"),
    ({"train": {"epochs": [1, 2]}}, "train.epochs", "expected an integer"),
    ({"train": {"epochs": 0}}, "train.epochs", "expected a value >= 1"),
    ({"train": {"batch_size": 0}}, "train.batch_size", "expected a value >= 1"),
    ({"train": {"device": "tpu"}}, "train.device", "expected one of 'cpu', 'cuda', 'auto'"),
    ({"train": {"epoch": 3}}, "train.epoch", "unknown key (did you mean 'epochs'?)"),
    ({"clip": {"mode": "norm"}}, "clip.threshold", "required by clip mode 'norm'"),
    ({"clip": {"mode": "norm", "threshold": -1}}, "clip.threshold", "expected a value > 0"),
    ({"clip": {"mode": "global_norm", "threshold": 1, "norm_type": 3}}, "clip.norm_type", "expected one of 1, 2, inf"),
    ({"clip": {"mode": "value", "threshold": 1, "norm_type": 2}}, "clip.norm_type", "not a setting of clip mode 'value'"),
    ({"clip": {"mode": "clip_norm"}}, "clip.mode", "unknown clip mode 'clip_norm'"),
    ({"loss": {"reduction": "avg"}}, "loss.reduction", "expected one of 'mean', 'sum'"),
    ({"model": {"hidden": 3}}, "model.hidden", "not a setting of model 'srn'"),
    ({"data": {"length": 2}}, "data.length", "expected a value >= 3"),
    ({"optimiser": {"name": "sgd"}}, "optimiser", "unknown section (did you mean 'optimizer'?)"),
]


@pytest.mark.parametrize("changes, key, expected", BAD_CONFIGS)
def test_bad_values_name_file_key_and_expectation(write_config, changes, key, expected) -> None:
    path = write_config(**changes)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.key == key
    assert str(raised.value).startswith(f"{path}: {key}: ")
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("text, expected", [
    ("", "the file is empty"),
    ("- data\n- model\n", "expected a mapping of sections at the top level, got a list"),
    ("data: {name: digit_sum\nmodel: [", "invalid YAML at line"),
    ("data: [1, 2]\n", "data: expected a mapping, got a list"),
])
def test_malformed_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("override, expected", [
    ("optimizer.lr", "overrides must be in the form section.key=value"),
    ("lr=0.1", "overrides must be in the form section.key=value"),
    ("optimiser.lr=0.1", "unknown section 'optimiser' (did you mean 'optimizer'?)"),
    ("optimizer.rate=0.1", "optimizer.rate (from --set): not a setting of optimizer 'sgd'"),
    ("optimizer.lr=abc", "optimizer.lr (from --set): expected a number, got 'abc'"),
])
def test_bad_overrides(write_config, override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(write_config(), [override])


@pytest.mark.parametrize("overrides", [
    ["clip.threshold=none"],
    ["clip.threshold=None"],
    ["clip.mode=norm", "clip.threshold=3", "clip.threshold=none"],  # the last value of a key wins, as always
])
def test_a_threshold_of_none_means_no_clipping_for_set_as_for_grid(overrides: list[str]) -> None:
    path = CONFIGS / "srn_clip.yaml"
    assert load_config(path).clip.name == "norm"
    assert load_config(path, overrides).clip.name == "none"
    assert load_config(path, overrides).to_dict()["clip"] == {"mode": "none"}
    raw, _ = apply_overrides(parse_yaml(path.read_text(), str(path)), [], str(path))
    (point,) = expand([parse_axis("clip.threshold=none", str(path))], 1, 0, str(path))
    assert point_config(raw, point, str(path)).to_dict()["clip"] == load_config(path, overrides).to_dict()["clip"]


def test_a_threshold_set_again_after_none_clips_again() -> None:
    assert load_config(CONFIGS / "srn_clip.yaml", ["clip.threshold=none", "clip.threshold=2"]).clip.params[
        "threshold"] == 2
