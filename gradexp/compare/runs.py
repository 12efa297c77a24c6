"""Finding run folders (gradexp.recording.folder reads each), and naming them, for `gradexp compare`.

A path that is not itself a run folder is searched, to any depth, for run folders: a sweep, `runs/`,
or a folder of sweeps; but not the folders where MLflow keeps its copies of exported runs' files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from gradexp.errors import DataError
from gradexp.recording.folder import RunFolder, is_run_folder
from gradexp.recording.layout import METRICS, SUMMARY
# A run folder's name ends in its start time, -YYYYmmdd-HHMMSS (and perhaps more digits): numbers after -/_.
START_TIME = re.compile(r"([-_]\d+)+$")
NAME_SEPARATOR = re.compile(r"[-_]")
# MLflow's stores of artifacts (`gradexp export --mlflow` copies a run folder's files there): the copies would
# read as more runs, and grow with every export.
ARTIFACT_FOLDERS = frozenset({"mlartifacts", "mlruns"})


@dataclass
class Gathered:
    """The runs that could be read, in the order given, and one error per path or run that could not."""

    runs: list[RunFolder] = field(default_factory=list)
    failures: list[DataError] = field(default_factory=list)


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
        children = sorted(child for child in folder.iterdir()
                          if child.is_dir() and not child.is_symlink() and child.name not in ARTIFACT_FOLDERS)
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
                gathered.runs.append(RunFolder.read(folder))
            except DataError as failure:
                gathered.failures.append(failure)
    return gathered


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
