"""gradexp.recording.files: buffered CSV logs, atomic JSON/YAML/byte files, run folders, number formatting.

References are hand-written expectations, the csv/json/yaml modules' readers, os.stat and numpy's float printing.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml

from gradexp.errors import DataError, OutputError
from gradexp.recording import files
from gradexp.recording.files import (CsvLog, create_run_folder, format_number, remove_unfinished_writes, write_bytes,
                                     write_json, write_yaml)

COLUMNS = ["step", "loss", "note"]
HEADER = b"step,loss,note\n"


def read_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.reader(file))


def reject_constant(name: str) -> None:
    raise AssertionError(f"the file holds {name}, which is not JSON")


def temporary_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.tmp")) + sorted(folder.glob(".*.tmp"))


# --- CsvLog ---------------------------------------------------------------------------------------------------------

def test_a_new_log_holds_the_header_and_counts_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("an older file's content\n1,2,3\n")
    log = CsvLog(path, COLUMNS)
    assert path.read_bytes() == HEADER  # an existing file is emptied first
    assert log.size == len(HEADER) == path.stat().st_size
    log.close()


def test_rows_reach_the_file_at_flush_not_at_write_rows(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    log = CsvLog(path, COLUMNS)
    log.write_rows([[1, 0.5, "a"], [2, 0.25, "b"]])
    log.write_rows([[3, 0.125, "c"]])
    assert path.read_bytes() == HEADER
    assert log.size == len(HEADER)
    log.flush()
    assert path.read_bytes() == HEADER + b"1,0.5,a\n2,0.25,b\n3,0.125,c\n"
    assert log.size == path.stat().st_size
    log.close()


def test_size_is_the_files_byte_size_after_each_flush(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    log = CsvLog(path, COLUMNS)
    for step in range(1, 6):
        # texts of different lengths, one needing quotes and one non-ASCII (bytes, not characters, are counted)
        log.write_rows([[step, 1.0 / step, "x" * step], [step, None, 'quote "me", please'], [step, -step, "é"]])
        log.flush()
        assert log.size == path.stat().st_size
    log.flush()  # nothing pending: nothing changes
    assert log.size == path.stat().st_size
    log.close()
    assert read_rows(path)[2] == ["1", "", 'quote "me", please']
    assert read_rows(path)[3] == ["1", "-1", "é"]


ROUND_TRIP_FLOATS = [0.1 + 0.2, 1e-300, -0.0, 0.1, 1.0 / 3.0, 5e-324, 1.7976931348623157e308, 2.0 ** 53 + 2,
                     123456789.123456789, -2.5e-8, 1e22, math.pi]


def test_floats_read_back_equal_and_none_cells_are_empty(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    log = CsvLog(path, ["value", "missing", "count", "flag"])
    log.write_rows([[value, None, 7, True] for value in ROUND_TRIP_FLOATS])
    log.close()
    rows = read_rows(path)
    assert rows[0] == ["value", "missing", "count", "flag"]
    assert len(rows) == 1 + len(ROUND_TRIP_FLOATS)
    for written, row in zip(ROUND_TRIP_FLOATS, rows[1:]):
        assert float(row[0]) == written
        assert math.copysign(1.0, float(row[0])) == math.copysign(1.0, written)  # -0.0 keeps its sign
        assert row[1:] == ["", "7", "1"]


TRICKY_ROWS = [
    [1, 0.5, None, math.nan, -math.inf, 1e-300, True],  # numbers: joined without the csv module
    ["dev", "a,b", 'say "hi"', "two\nlines", "carriage\rreturn", " spaced "],
    [""],  # one empty cell: csv writes it quoted, or the line would read as no row at all
    ["only"],
]


@pytest.mark.parametrize("rows", [TRICKY_ROWS[:1], TRICKY_ROWS, TRICKY_ROWS[2:3], TRICKY_ROWS[3:]])
def test_rows_are_written_as_the_csv_module_writes_them(tmp_path: Path, rows: list) -> None:
    log = CsvLog(tmp_path / "log.csv", ["a", "b"])
    log.write_rows(rows)
    log.close()
    expected = tmp_path / "expected.csv"
    with expected.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["a", "b"])
        writer.writerows([["" if cell is None else format_number(cell) for cell in row] for row in rows])
    assert (tmp_path / "log.csv").read_bytes() == expected.read_bytes()


def test_close_flushes_pending_rows_and_can_be_called_twice(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    log = CsvLog(path, COLUMNS)
    log.write_rows([[1, 2.5, "kept"]])
    log.close()
    assert path.read_bytes() == HEADER + b"1,2.5,kept\n"
    assert log.size == path.stat().st_size
    log.close()
    assert path.read_bytes() == HEADER + b"1,2.5,kept\n"


def test_resume_cuts_the_file_back_to_the_recorded_size_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    log = CsvLog(path, COLUMNS)
    log.write_rows([[1, 0.5, "a"], [2, 0.25, "b"]])
    log.flush()
    recorded = log.size
    log.write_rows([[3, 0.125, "lost"], [4, 0.0625, "lost"]])
    log.close()
    assert path.stat().st_size > recorded

    resumed = CsvLog.resume(path, COLUMNS, recorded)
    assert resumed.size == recorded == path.stat().st_size
    assert read_rows(path) == [COLUMNS, ["1", "0.5", "a"], ["2", "0.25", "b"]]
    resumed.write_rows([[3, 0.75, "new"]])
    resumed.flush()
    assert resumed.size == path.stat().st_size
    resumed.write_rows([[4, None, "newer"]])
    resumed.close()
    assert resumed.size == path.stat().st_size
    assert read_rows(path) == [COLUMNS, ["1", "0.5", "a"], ["2", "0.25", "b"], ["3", "0.75", "new"],
                               ["4", "", "newer"]]


def test_a_log_written_in_two_sessions_has_the_bytes_of_one_written_in_one_go(tmp_path: Path) -> None:
    first_rows = [[1, 0.1 + 0.2, None], [2, 1e-300, "x"]]
    later_rows = [[3, -0.0, "y"], [4, 2.0 / 3.0, None]]

    in_one_go = CsvLog(tmp_path / "one.csv", COLUMNS)
    in_one_go.write_rows(first_rows)
    in_one_go.flush()
    in_one_go.write_rows(later_rows)
    in_one_go.close()

    session = CsvLog(tmp_path / "two.csv", COLUMNS)
    session.write_rows(first_rows)
    session.sync()
    recorded = session.size
    session.write_rows([[3, 99.0, "written after the resume point"]])
    session.close()
    resumed = CsvLog.resume(tmp_path / "two.csv", COLUMNS, recorded)
    resumed.write_rows(later_rows)
    resumed.close()

    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()
    assert resumed.size == in_one_go.size == (tmp_path / "one.csv").stat().st_size


def test_resume_refuses_a_file_with_another_header(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    CsvLog(path, COLUMNS).close()
    before = path.read_bytes()
    with pytest.raises(DataError) as caught:
        CsvLog.resume(path, ["step", "loss", "other"], len(HEADER))
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before  # refused before anything was cut


def test_resume_refuses_a_file_shorter_than_the_recorded_size(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    log = CsvLog(path, COLUMNS)
    log.write_rows([[1, 0.5, "a"]])
    log.close()
    before = path.read_bytes()
    with pytest.raises(DataError) as caught:
        CsvLog.resume(path, COLUMNS, len(before) + 1)
    assert caught.value.path == str(path)
    assert path.read_bytes() == before


def test_resume_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        CsvLog.resume(tmp_path / "gone.csv", COLUMNS, 0)
    assert caught.value.path == str(tmp_path / "gone.csv")


# --- atomic writes --------------------------------------------------------------------------------------------------

def test_write_json_holds_exactly_the_data_with_non_finite_floats_as_null(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    data = {
        "loss": 0.1 + 0.2,
        "tiny": 1e-300,
        "bad": [math.nan, math.inf, -math.inf, 1.5],
        "pair": (1, (math.nan, "x")),
        "nested": {"deeper": {"values": [1, 2.5, {"inf": math.inf}], "none": None}, "flag": True},
        3: "an integer key",
    }
    write_json(path, data)
    read = json.loads(path.read_text(encoding="utf-8"), parse_constant=reject_constant)
    assert read == {
        "loss": 0.1 + 0.2,
        "tiny": 1e-300,
        "bad": [None, None, None, 1.5],
        "pair": [1, [None, "x"]],
        "nested": {"deeper": {"values": [1, 2.5, {"inf": None}], "none": None}, "flag": True},
        "3": "an integer key",
    }
    assert list(read) == ["loss", "tiny", "bad", "pair", "nested", "3"]  # the order given, not sorted
    assert temporary_files(tmp_path) == []


def test_write_json_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    path.write_text('{"old": true, "longer": "than the new content, so a stale tail would show"}')
    write_json(path, {"new": 1})
    assert json.loads(path.read_text()) == {"new": 1}


def test_write_yaml_holds_exactly_the_data(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    data = {"model": {"name": "srn", "hidden_size": 8}, "optimizer": {"lr": 0.1 + 0.2},
            "list": [1, "two", 3.5, None, True], "name": "ünïcode"}
    write_yaml(path, data)
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == data
    assert list(yaml.safe_load(path.read_text(encoding="utf-8"))) == list(data)  # keys keep their order


def test_write_bytes_holds_exactly_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    data = bytes(range(256)) + b"\r\n\n\r" * 3
    write_bytes(path, data)
    assert path.read_bytes() == data


@pytest.mark.parametrize("write, data", [
    (write_json, {"fine": 1, "not JSON": object()}),
    (write_yaml, {"fine": 1, "not YAML": object()}),
], ids=["json", "yaml"])
def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary_file(tmp_path: Path, write, data) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"the old content")
    with pytest.raises(Exception):
        write(path, data)
    assert path.read_bytes() == b"the old content"
    assert os.listdir(tmp_path) == ["file"]


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    path.write_bytes(b"old")

    def write_half_then_stop(file) -> None:
        file.write(b"half of the new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files._write_atomically(path, write_half_then_stop, binary=True)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["best.pt"]


def test_a_failed_rename_is_an_output_error_and_leaves_no_temporary_file(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "summary.json"
    path.write_text("old")

    def refuse(source, target) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(OutputError) as caught:
        write_json(path, {"new": 1})
    assert caught.value.path == str(path)
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["summary.json"]


def test_writing_into_a_missing_folder_is_an_output_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "summary.json"
    with pytest.raises(OutputError) as caught:
        write_json(path, {})
    assert caught.value.path == str(path)


@pytest.mark.parametrize("write, data", [(write_json, {"a": 1}), (write_yaml, {"a": 1}), (write_bytes, b"a")],
                         ids=["json", "yaml", "bytes"])
def test_atomic_writes_get_the_permissions_of_an_ordinary_open(tmp_path: Path, write, data) -> None:
    umask = os.umask(0)
    os.umask(umask)
    ordinary = tmp_path / "ordinary"
    ordinary.write_bytes(b"")  # open(..., "w"): 0o666 less the umask
    path = tmp_path / "atomic"
    write(path, data)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE(ordinary.stat().st_mode)
    if umask & 0o066 != 0o066:
        assert mode != 0o600  # not mkstemp's own mode


def test_remove_unfinished_writes_deletes_only_temporary_files_of_atomic_writes(tmp_path: Path) -> None:
    leftovers = [".summary.json.k2j4_x.tmp", ".best.pt.abc.tmp"]
    kept = ["summary.json", "metrics.csv", "notes.tmp", ".hidden", ".tmpfile", "a.tmp.bak"]
    for name in leftovers + kept:
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".deeper.tmp").write_text("x")  # only the folder itself is cleaned
    remove_unfinished_writes(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["sub"])
    assert (tmp_path / "sub" / ".deeper.tmp").exists()


def test_remove_unfinished_writes_removes_what_an_interrupted_atomic_write_leaves(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch
                                                                                  ) -> None:
    # A process killed between writing and renaming leaves mkstemp's file: simulate it by skipping the
    # clean-up (unlinking does nothing) and failing the rename.
    monkeypatch.setattr(files.os, "replace", lambda source, target: (_ for _ in ()).throw(OSError(5, "I/O error")))
    monkeypatch.setattr(files.Path, "unlink", lambda self, missing_ok=False: None)
    with pytest.raises(OutputError):
        write_json(tmp_path / "summary.json", {"a": 1})
    monkeypatch.undo()
    assert len(os.listdir(tmp_path)) == 1 and os.listdir(tmp_path)[0].startswith(".summary.json.")
    remove_unfinished_writes(tmp_path)
    assert os.listdir(tmp_path) == []


# --- run folders ----------------------------------------------------------------------------------------------------

def test_create_run_folder_names_it_after_the_run_and_the_utc_time(tmp_path: Path) -> None:
    folder = create_run_folder(tmp_path / "runs" / "nested", "srn")
    assert folder.is_dir() and folder.parent == tmp_path / "runs" / "nested"
    assert re.fullmatch(r"srn-\d{8}-\d{6}", folder.name)
    assert list(folder.iterdir()) == []


def test_create_run_folder_never_reuses_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "utc_timestamp", lambda: "20240102-030405")  # every call in the same second
    first = create_run_folder(tmp_path, "run")
    (first / "metrics.csv").write_text("first run's file")
    second = create_run_folder(tmp_path, "run")
    third = create_run_folder(tmp_path, "run")
    assert [first.name, second.name, third.name] == ["run-20240102-030405", "run-20240102-030405-2",
                                                     "run-20240102-030405-3"]
    assert (first / "metrics.csv").read_text() == "first run's file"
    assert list(second.iterdir()) == [] and list(third.iterdir()) == []


def test_create_run_folder_skips_a_name_taken_by_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "utc_timestamp", lambda: "20240102-030405")
    (tmp_path / "run-20240102-030405").write_text("not a folder")
    folder = create_run_folder(tmp_path, "run")
    assert folder.name == "run-20240102-030405-2" and folder.is_dir()
    assert (tmp_path / "run-20240102-030405").read_text() == "not a folder"


def test_a_run_folder_that_cannot_be_created_is_an_output_error_naming_the_place(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out_dir = blocker / "runs"
    with pytest.raises(OutputError) as caught:
        create_run_folder(out_dir, "run")
    assert caught.value.path == str(out_dir)
    assert str(out_dir) in str(caught.value)


# --- format_number --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [
    (0.1, "0.1"), (0.1 + 0.2, "0.30000000000000004"), (1e-300, "1e-300"), (-0.0, "-0.0"), (2.5, "2.5"),
    (1.0, "1.0"), (1e22, "1e+22"), (5e-324, "5e-324"), (np.float64(0.1), "0.1"),
    (3, "3"), (-12, "-12"), (0, "0"), (True, "1"), (False, "0"), (np.int64(7), "7"),
])
def test_format_number_by_hand(value, text: str) -> None:
    assert format_number(value) == text


def significant_digits(text: str) -> str:
    mantissa = re.split("[eE]", text.lstrip("-"))[0]
    return mantissa.replace(".", "").lstrip("0").rstrip("0") or "0"


def test_format_number_is_the_shortest_text_that_reads_back_as_the_float() -> None:
    generator = np.random.default_rng(0)
    values = np.concatenate([generator.standard_normal(300) * 10.0 ** generator.integers(-300, 300, 300),
                             generator.random(200), np.float32(generator.random(100)).astype(np.float64)])
    for value in map(float, values):
        text = format_number(value)
        assert float(text) == value
        # numpy's Dragon4 in "unique" mode gives the fewest digits that identify the float
        assert significant_digits(text) == significant_digits(np.format_float_scientific(value, unique=True))
