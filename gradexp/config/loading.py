"""Turn a YAML file plus `--set` overrides into a checked ExperimentConfig.

Two steps: `read_raw_config` (the YAML with the overrides applied, as a RawConfig) and its `check`.
`load_config` does both; a sweep keeps the RawConfig to apply each point's values to it.

Every failure is a ConfigError naming the file, the dotted key and what was expected;
nothing here trains, builds data or touches the output folder.
"""

from __future__ import annotations

import difflib
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from gradexp.clipping import CLIP_MODES
from gradexp.config.schema import (
    COMPONENT_SECTIONS,
    MOVED_KEYS,
    PLAIN_SECTIONS,
    SECTION_NAMES,
    ComponentConfig,
    ExperimentConfig,
)
from gradexp.data import DATASETS
from gradexp.errors import ConfigError
from gradexp.losses import LOSSES
from gradexp.models import MODELS
from gradexp.optim import OPTIMIZERS
from gradexp.registry import Registry
from gradexp.schedules import SCHEDULES
from gradexp.value_types import InvalidValue, check_value, describe

# Sections a config may leave out, and what they mean then.
SECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "loss": {"name": "cross_entropy"},
    "clip": {"mode": "none"},
    "schedule": {"name": "none"},
}


# The registry behind each component section. Components never import gradexp.config (their keys'
# types live in gradexp.value_types, below both), so importing them here at the top makes no cycle.
COMPONENT_REGISTRIES: dict[str, Registry] = {
    "data": DATASETS, "model": MODELS, "optimizer": OPTIMIZERS, "loss": LOSSES, "clip": CLIP_MODES,
    "schedule": SCHEDULES,
}


def component_registry(section: str) -> Registry:
    """The registry behind a component section."""
    return COMPONENT_REGISTRIES[section]


@dataclass(frozen=True)
class RawConfig:
    """A config file as YAML gave it, with the `--set` overrides applied, before any value is checked.

    A sweep applies each point's values to `sections` (see gradexp.sweep.grid.point_config).
    """

    source: str
    name: str
    sections: dict[str, Any]
    overridden: frozenset[str]

    def check(self) -> ExperimentConfig:
        """The checked ExperimentConfig; a ConfigError names the file and key (from --set where overridden)."""
        return config_from_dict(self.sections, source=self.source, name=self.name, overridden=self.overridden)


def read_raw_config(path: str | Path, overrides: Iterable[str] = ()) -> RawConfig:
    """Read the YAML at `path` and apply `overrides` to it, checking no value yet."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "no such file") from None
    except IsADirectoryError:
        raise ConfigError(source, "", "is a folder, expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as failure:
        raise ConfigError(source, "", f"cannot be read ({failure})") from None
    sections, overridden = apply_overrides(parse_yaml(text, source), overrides, source)
    return RawConfig(source=source, name=path.stem, sections=sections, overridden=frozenset(overridden))


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read, override and check the config at `path`."""
    return read_raw_config(path, overrides).check()


# What PyYAML lets through from a well-formed document it cannot turn into values: a date such as
# 2020-13-45 or an integer of more than 4300 digits (ValueError), or nesting deeper than Python's stack.
YAML_VALUE_FAILURES = (ValueError, OverflowError, RecursionError)


def _value_failure(failure: Exception) -> str:
    if isinstance(failure, RecursionError):
        return "nested too deeply"
    return str(failure).split(";")[0].splitlines()[0]


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as failure:
        mark = failure.problem_mark or failure.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = failure.problem or failure.context or "syntax error"
        raise ConfigError(source, "", f"invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as failure:
        # e.g. a control character (ReaderError); its text goes on over several lines
        raise ConfigError(source, "", f"invalid YAML: {str(failure).splitlines()[0]}") from None
    except YAML_VALUE_FAILURES as failure:
        raise ConfigError(source, "", f"invalid YAML: {_value_failure(failure)}") from None
    if raw is None:
        raise ConfigError(source, "", f"the file is empty; expected a mapping with sections {', '.join(SECTION_NAMES)}")
    if not isinstance(raw, dict):
        raise ConfigError(source, "", f"expected a mapping of sections at the top level, got {_kind(raw)}")
    return raw


# `--set clip.threshold=none` (or --grid ...,none): run without clipping.
NO_CLIP_KEY = "clip.threshold"


def parse_override(text: str, source: str) -> tuple[str, str, Any]:
    """Split one `section.key=value`; the value is read as YAML (so 0.1 is a number, none/null is null,
    but clip.mode=none names the clip mode `none`)."""
    name, separator, value_text = text.partition("=")
    name = name.strip()
    if not separator or "." not in name or not all(name.split(".")) or name.count(".") != 1:
        raise ConfigError(source, f"--set {text}", "overrides must be in the form section.key=value")
    section, key = name.split(".")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else ""
    except (yaml.YAMLError, *YAML_VALUE_FAILURES):
        value = value_text
    # `none` clears an optional value (plot.steps=none), except where the key names a component:
    # there it is the registered `none` (clip.mode=none, schedule.name=none), which null would leave "missing".
    if isinstance(value, str) and value.strip().lower() == "none" and COMPONENT_SECTIONS.get(section) != key:
        value = None
    return section, key, value


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str], source: str) -> tuple[dict[str, Any], set[str]]:
    """Return a copy of `raw` with each `section.key=value` applied, and the dotted keys that were set.

    One rule beyond setting values, the same for `--set` and `--grid`: `clip.threshold=none` means "no
    clipping", so the clip section becomes `mode: none` (its other keys dropped, whatever else set them). A
    threshold of infinity would clip nothing too; `none` says it plainly and leaves the metrics'
    clip_threshold column empty, as an unclipped run's is.
    """
    updated = {section: dict(body) if isinstance(body, dict) else body for section, body in raw.items()}
    overridden: set[str] = set()
    unclipped = False
    for text in overrides:
        section, key, value = parse_override(text, source)
        if section not in SECTION_NAMES:
            raise ConfigError(source, f"--set {text}", f"unknown section {section!r}{_suggest(section, SECTION_NAMES)}")
        body = updated.setdefault(section, dict(SECTION_DEFAULTS.get(section, {})))
        if not isinstance(body, dict):
            raise ConfigError(source, section, f"expected a mapping, got {_kind(body)}")
        body[key] = value
        overridden.add(f"{section}.{key}")
        if f"{section}.{key}" == NO_CLIP_KEY:
            unclipped = value is None
    if unclipped:
        updated["clip"] = {"mode": "none"}
    return updated, overridden


def config_from_dict(
    raw: Mapping[str, Any], *, source: str, name: str, overridden: set[str] = frozenset()
) -> ExperimentConfig:
    """Check every section of an already-parsed config and build the typed ExperimentConfig."""

    def fail(key: str, message: str) -> ConfigError:
        return ConfigError(source, f"{key} (from --set)" if key in overridden else key, message)

    for section in raw:
        if section not in SECTION_NAMES:
            raise fail(str(section), f"unknown section{_suggest(str(section), SECTION_NAMES)}; "
                                     f"expected {', '.join(SECTION_NAMES)}")
    raw = _with_moved_keys(raw, fail)
    built: dict[str, Any] = {}
    for section, name_key in COMPONENT_SECTIONS.items():
        body = raw.get(section, SECTION_DEFAULTS.get(section))
        if body is None:
            raise fail(section, f"missing section; expected a mapping with a '{name_key}' key")
        built[section] = _component(section, name_key, body, fail)
    for section, schema in PLAIN_SECTIONS.items():
        built[section] = _plain_section(section, schema, raw.get(section, {}), fail)
    return ExperimentConfig(name=name, source=source, **built)


def _with_moved_keys(raw: Mapping[str, Any], fail) -> Mapping[str, Any]:
    """`raw` with each key of MOVED_KEYS in its new place (an old config, or an old run's resume point)."""
    moved = {section: dict(body) if isinstance(body, dict) else body for section, body in raw.items()}
    for (old_section, old_key), (new_section, new_key) in MOVED_KEYS.items():
        old_body = moved.get(old_section)
        if not isinstance(old_body, dict) or old_key not in old_body:
            continue
        new_body = moved.setdefault(new_section, {})
        if new_body is None:
            new_body = moved[new_section] = {}
        if not isinstance(new_body, dict):
            continue  # reported as the section's error
        if new_key in new_body:
            raise fail(f"{old_section}.{old_key}", f"is {new_section}.{new_key} now, which is also given; keep one")
        new_body[new_key] = old_body.pop(old_key)
    return moved


def _component(section: str, name_key: str, body: Any, fail) -> ComponentConfig:
    if not isinstance(body, dict):
        raise fail(section, f"expected a mapping, got {_kind(body)}")
    registry = component_registry(section)
    chosen = body.get(name_key)
    if chosen is None:
        raise fail(f"{section}.{name_key}", f"missing; expected one of {', '.join(registry.names())}")
    if not isinstance(chosen, str) or chosen not in registry:
        raise fail(f"{section}.{name_key}", f"unknown {registry.kind} {chosen!r}{_suggest(str(chosen), registry.names())}; "
                                            f"expected one of {', '.join(registry.names())}")
    accepted = {parameter.name: parameter for parameter in registry.parameters(chosen)}
    for key in body:
        if key != name_key and key not in accepted:
            expected = ", ".join(accepted) if accepted else "no other keys"
            raise fail(f"{section}.{key}", f"not a setting of {registry.kind} {chosen!r}"
                                           f"{_suggest(str(key), list(accepted))}; expected {expected}")
    params: dict[str, Any] = {}
    for key, parameter in accepted.items():
        if key not in body:
            if parameter.required:
                raise fail(f"{section}.{key}", f"required by {registry.kind} {chosen!r}; expected "
                                               f"{describe(parameter.annotation)}")
            params[key] = parameter.default
            continue
        try:
            params[key] = check_value(body[key], parameter.annotation)
        except InvalidValue as failure:
            raise fail(f"{section}.{key}", str(failure)) from None
    return ComponentConfig(name=chosen, params=params)


def _plain_section(section: str, schema: type, body: Any, fail) -> Any:
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise fail(section, f"expected a mapping, got {_kind(body)}")
    hints = typing.get_type_hints(schema, include_extras=True)
    names = [f.name for f in fields(schema)]
    values = {}
    for key, value in body.items():
        if key not in names:
            raise fail(f"{section}.{key}", f"unknown key{_suggest(str(key), names)}; expected one of {', '.join(names)}")
        try:
            values[key] = check_value(value, hints[key])
        except InvalidValue as failure:
            raise fail(f"{section}.{key}", str(failure)) from None
    return schema(**values)


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
