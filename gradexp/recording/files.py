"""How a run's files are written: new run folders, buffered CSV logs, atomic JSON/YAML/byte files.

Files that must be all-or-nothing (summary.json, config.yaml, checkpoints, PDFs) are written to a
temporary file and renamed, so a crash leaves either the old file, the new one, or none.
CSV rows are appended whole and flushed in batches.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import yaml

from gradexp.errors import DataError, OutputError


# What create_run_folder adds to a run's name: "-20261130-131802", and "-2", "-3" ... after it.
RUN_FOLDER_SUFFIX = re.compile(r"-\d{8}-\d{6}(-\d+)?$")


def utc_timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def create_run_folder(out_dir: str | Path, name: str) -> Path:
    """Create `out_dir/<name>-<UTC timestamp>/`, adding -2, -3 ... rather than reuse a folder that exists."""
    out_dir = Path(out_dir)
    base = f"{name}-{utc_timestamp()}"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 1000):
            candidate = out_dir / (base if attempt == 1 else f"{base}-{attempt}")
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
    except OSError as failure:
        raise OutputError(str(out_dir), f"cannot create a run folder here ({failure.strerror or failure})") from None
    raise OutputError(str(out_dir), f"too many run folders named {base}*")


def json_ready(value: Any) -> Any:
    """Plain JSON data: non-finite floats become null (JSON has no NaN or Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


TEMPORARY_SUFFIX = ".tmp"


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


CURRENT_UMASK = _read_umask()


def _write_atomically(path: Path, write: Any, binary: bool = False) -> None:
    """Call write(file) on a temporary file beside `path`, fsync it, then rename it over `path`."""
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
        # mkstemp makes the file 0600; give it the permissions an ordinary open would (0666 less the umask).
        os.chmod(temporary, 0o666 & ~CURRENT_UMASK)
        try:
            with os.fdopen(handle, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as file:
                write(file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as failure:
        raise OutputError(str(path), f"cannot be written ({failure.strerror or failure})") from None


def run_name(folder: Path) -> str:
    """The name create_run_folder made `folder` from: its name without the timestamp (and -2, -3 ...)."""
    return RUN_FOLDER_SUFFIX.sub("", folder.name)


def remove_unfinished_writes(folder: Path) -> None:
    """Delete the temporary files of atomic writes that a killed process never got to rename."""
    for leftover in folder.glob(f".*{TEMPORARY_SUFFIX}"):
        leftover.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    _write_atomically(path, lambda file: json.dump(json_ready(data), file, indent=2, sort_keys=False) or file.write("\n"))


def write_yaml(path: Path, data: Any) -> None:
    _write_atomically(path, lambda file: yaml.safe_dump(data, file, sort_keys=False))


def write_bytes(path: Path, data: bytes) -> None:
    _write_atomically(path, lambda file: file.write(data), binary=True)


def format_number(value: float) -> str:
    """Shortest round-trip text of a float; the same value always gives the same bytes."""
    if isinstance(value, bool):
        return str(int(value))
    return repr(float(value)) if isinstance(value, float) else str(value)


def _open_for_appending(path: Path, truncate: bool) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_TRUNC if truncate else 0), 0o644)
    except OSError as failure:
        raise OutputError(str(path), f"cannot be written ({failure.strerror or failure})") from None


class CsvLog:
    """An append-only CSV file written in whole rows.

    Rows wait in memory and reach the file at `flush` in one write, so a crash (even kill -9)
    leaves the rows of earlier flushes, whole. `sync` also makes them survive a power loss; the
    runner calls it before each resume point, which records `size` (the bytes written so far) and
    which `resume` cuts the file back to.
    """

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        """Create (or empty) `path` and write the header."""
        self._attach(path, columns, _open_for_appending(path, truncate=True), size=0)
        self._pending.append(self._format([self.columns]))
        self.flush()

    @classmethod
    def resume(cls, path: Path, columns: Sequence[str], size: int) -> "CsvLog":
        """Reopen a log written by an earlier run, cut back to its first `size` bytes, for appending."""
        try:
            with path.open(encoding="utf-8", newline="") as file:
                header = file.readline()
        except OSError as failure:
            raise DataError(str(path), f"cannot be read ({failure.strerror or failure})") from None
        expected = cls._format([list(columns)])
        if header != expected:
            raise DataError(str(path), f"does not start with this run's header {expected.strip()!r}")
        if path.stat().st_size < size:
            raise DataError(str(path), f"holds {path.stat().st_size} bytes, fewer than the {size} its checkpoint "
                                       f"recorded; the file was changed after the run")
        log = cls.__new__(cls)
        log._attach(path, columns, _open_for_appending(path, truncate=False), size)
        try:
            os.ftruncate(log._descriptor, size)
        except OSError as failure:
            raise OutputError(str(path), f"cannot be written ({failure.strerror or failure})") from None
        return log

    def _attach(self, path: Path, columns: Sequence[str], descriptor: int, size: int) -> None:
        self.path = path
        self.columns = list(columns)
        self.size = size
        self._descriptor = descriptor
        self._pending: list[str] = []

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        # floats first: they are nearly every cell, and format_number's checks cost as much as the repr
        self._pending.append(self._format([[repr(cell) if type(cell) is float else "" if cell is None
                                            else format_number(cell) for cell in row] for row in rows]))

    def flush(self) -> None:
        data = "".join(self._pending).encode("utf-8")
        self._pending = []
        if not data:
            return
        try:
            written = 0
            while written < len(data):
                written += os.write(self._descriptor, data[written:])
        except OSError as failure:
            raise OutputError(str(self.path), f"cannot be written ({failure.strerror or failure})") from None
        self.size += len(data)

    def sync(self) -> None:
        """Flush, then have the disk hold every row written (fsync: a few milliseconds, so not at every flush)."""
        self.flush()
        try:
            os.fsync(self._descriptor)
        except OSError as failure:
            raise OutputError(str(self.path), f"cannot be written ({failure.strerror or failure})") from None

    def close(self) -> None:
        if self._descriptor >= 0:
            self.flush()
            os.close(self._descriptor)
            self._descriptor = -1

    @staticmethod
    def _format(rows: Sequence[Sequence[str]]) -> str:
        """The CSV text csv.writer writes for `rows` of texts. Rows of numbers need no quoting and are joined
        directly: csv.writer took a third of the time of formatting a row of floats."""
        lines = [",".join(row) for row in rows]
        text = "".join(line + "\n" for line in lines)
        plain = (not any(mark in text for mark in '"\r') and text.count("\n") == len(lines)
                 and all(len(row) > 1 and line.count(",") == len(row) - 1 for row, line in zip(rows, lines)))
        if plain:
            return text
        quoted = io.StringIO()
        csv.writer(quoted, lineterminator="\n").writerows(rows)
        return quoted.getvalue()


# How each text format a run folder holds is parsed, and the errors that mean the text is not valid.
PARSERS: dict[str, tuple[Callable[[str], Any], tuple[type[Exception], ...]]] = {
    "JSON": (json.loads, (json.JSONDecodeError,)),
    "YAML": (yaml.safe_load, (yaml.YAMLError,)),
}


def read_mapping(path: Path, language: str, what: str) -> dict[str, Any]:
    """The mapping a JSON or YAML file (`language`) holds; a file that cannot be read, is not valid, or holds
    anything but a mapping raises a one-line DataError naming it and saying it is not `what`."""
    parse, invalid = PARSERS[language]
    try:
        data = parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as failure:
        raise DataError(str(path), f"cannot be read ({failure})") from None
    except invalid as failure:
        raise DataError(str(path), f"is not valid {language} ({str(failure).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise DataError(str(path), f"is not {what}")
    return data


def read_config(path: Path) -> dict[str, Any]:
    """A run's config.yaml as written (sections of keys). Here, not beside the run-folder reader: resuming a run
    reads it too, and `gradexp run` imports no pandas."""
    return read_mapping(path, "YAML", "a gradexp config (expected a mapping of sections)")
