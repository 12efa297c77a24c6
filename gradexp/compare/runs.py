"""Finding run folders and reading what each one wrote, for `gradexp compare`.

A run folder is a folder holding a summary.json or a metrics.csv (the runner writes metrics.csv
first and summary.json last, so a run that never finished has only the former). Any other folder
is searched, to any depth, for run folders: a sweep, `runs/`, or a folder of sweeps.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import pandas as pd
import yaml

from gradexp.errors import DataError
from gradexp.plotting import parameter_columns, read_metrics

SUMMARY = "summary.json"
METRICS = "metrics.csv"
CONFIG = "config.yaml"
# A run folder's name ends in its start time, -YYYYmmdd-HHMMSS (and perhaps more digits): numbers after -/_.
START_TIME = re.compile(r"([-_]\d+)+$")
NAME_SEPARATOR = re.compile(r"[-_]")


@dataclass(frozen=True)
class RunRecord:
    """One run folder as written, with whatever an older or unfinished run lacks left as None.

    summary: summary.json, or None when the run never finished.
    config: config.yaml flattened to dotted keys (optimizer.lr, clip.mode ...), or None without one.
    metrics: metrics.csv, or None without one.
    """

    path: Path
    summary: Optional[dict[str, Any]]
    config: Optional[dict[str, Any]]
    metrics: Optional[pd.DataFrame]

    @property
    def parameters(self) -> list[str]:
        """The model's parameter names: summary.json's list, else metrics.csv's grad_norm columns."""
        listed = (self.summary or {}).get("parameters")
        if isinstance(listed, list):
            return [str(name) for name in listed]
        return parameter_columns(self.metrics) if self.metrics is not None else []


@dataclass
class Gathered:
    """The runs that could be read, in the order given, and one error per path or run that could not."""

    runs: list[RunRecord] = field(default_factory=list)
    failures: list[DataError] = field(default_factory=list)


def is_run_folder(path: Path) -> bool:
    return (path / SUMMARY).is_file() or (path / METRICS).is_file()


def find_run_folders(path: Path) -> list[Path]:
    """`path` itself when it is a run folder, else every run folder below it (sorted, symlinks not followed)."""
    if not path.exists():
        raise DataError(str(path), "no such folder")
    if not path.is_dir():
        raise DataError(str(path), "is a file; expected a run folder or a folder that holds run folders")
    if is_run_folder(path):
        return [path]
    found = _run_folders_below(path)
    if not found:
        raise DataError(str(path), f"is not a run folder (no {SUMMARY} or {METRICS}) and holds none")
    return found


def _run_folders_below(folder: Path) -> list[Path]:
    found = []
    try:
        children = sorted(child for child in folder.iterdir() if child.is_dir() and not child.is_symlink())
    except OSError as failure:
        raise DataError(str(folder), f"cannot be listed ({failure.strerror or failure})") from None
    for child in children:
        found.extend([child] if is_run_folder(child) else _run_folders_below(child))
    return found


def gather_runs(paths: Sequence[str | Path]) -> Gathered:
    """Read every run found under `paths`; a path or run that cannot be read becomes a failure, not an exception.

    The same run reached twice (named itself and through its parent) is read once.
    """
    if not paths:
        raise DataError("RUN_DIR", "none given; name run folders or folders that hold them, e.g. gradexp compare runs/")
    gathered = Gathered()
    seen: set[Path] = set()
    for path in map(Path, paths):
        try:
            folders = find_run_folders(path)
        except DataError as failure:
            gathered.failures.append(failure)
            continue
        for folder in folders:
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            try:
                gathered.runs.append(load_run(folder))
            except DataError as failure:
                gathered.failures.append(failure)
    return gathered


def load_run(path: Path) -> RunRecord:
    """Read a run folder; a corrupt or empty file among those present raises a DataError naming it."""
    summary = _read_summary(path / SUMMARY) if (path / SUMMARY).is_file() else None
    config = flatten(_read_config(path / CONFIG)) if (path / CONFIG).is_file() else None
    metrics = read_metrics(path / METRICS) if (path / METRICS).is_file() else None
    return RunRecord(path, summary, config, metrics)


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as failure:
        raise DataError(str(path), f"cannot be read ({failure})") from None
    except json.JSONDecodeError as failure:
        raise DataError(str(path), f"is not valid JSON ({failure})") from None
    if not isinstance(data, dict):
        raise DataError(str(path), "is not a gradexp summary (expected a JSON object)")
    return data


def _read_config(path: Path) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as failure:
        raise DataError(str(path), f"cannot be read ({failure})") from None
    except yaml.YAMLError as failure:
        raise DataError(str(path), f"is not valid YAML ({str(failure).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DataError(str(path), "is not a gradexp config (expected a mapping of sections)")
    return data


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: {"clip": {"mode": "norm"}} -> {"clip.mode": "norm"}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def nested(mapping: Optional[Mapping[str, Any]], *keys: str) -> Any:
    """mapping[k1][k2]..., or None where a level is missing or not a mapping (an older or partial summary)."""
    value: Any = mapping
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def unique_names(paths: Iterable[Path]) -> list[str]:
    """Each path's folder name, or as many trailing parts as it takes to tell two same-named folders apart."""
    paths = list(paths)
    names = []
    for path in paths:
        depth = 1
        while depth < len(path.parts) and sum(other.parts[-depth:] == path.parts[-depth:] for other in paths) > 1:
            depth += 1
        names.append("/".join(path.parts[-depth:]))
    return names


def short_names(names: Sequence[str], shown_keys: Sequence[str]) -> list[str]:
    """Names for a narrow table, without the start time (srn_clip-20261130-101500 -> srn_clip).

    shown_keys: the dotted config keys shown beside the names when their values tell every run apart, else
    none. With them the fields identify the rows, so runs of one config (gradexp run srn_clip.yaml --set ...)
    may share a name, and a name ends before its first -/_ separated part that repeats one of those keys' last
    part: a sweep point's 000-lr0.05-seed0 -> 000 beside optimizer.lr and train.seed. Without them the start
    time stays wherever two names would otherwise read alike.
    """
    stems = [START_TIME.sub("", name) or name for name in names]
    if not shown_keys:
        return stems if len(set(stems)) == len(stems) else list(names)
    repeated = tuple(key.split(".")[-1] for key in shown_keys)
    return [_before_repeated_part(stem, repeated) for stem in stems]


def _before_repeated_part(name: str, repeated: tuple[str, ...]) -> str:
    """`name` up to its first -/_ separated part, the first part apart, that begins with one of `repeated`."""
    for separator in NAME_SEPARATOR.finditer(name):
        if separator.start() > 0 and name.startswith(repeated, separator.end()):
            return name[:separator.start()]
    return name
