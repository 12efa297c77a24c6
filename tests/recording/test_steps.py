"""gradexp.recording.steps (gradient_norms, StepRecorder, Divergence) and gradexp.recording.layout.MetricsColumns.

Rows are read back with the csv module and compared with the values recorded and with totals, maxima and
medians computed by hand (math, statistics) or by torch's own norm.
"""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch

from gradexp.errors import DataError
from gradexp.recording.files import CsvLog
from gradexp.recording.layout import CLIP_THRESHOLD, CLIPPED, MetricsColumns, parameter_names
from gradexp.recording.steps import (Divergence, StepRecorder, gradient_norms, largest_singular_values,
                                     update_ratios)

NAMES = ["W", "U", "b"]
HEADER = ["step", "epoch", "loss", "lr", "grad_norm/W", "grad_norm/U", "grad_norm/b", "grad_norm/total",
          "clipped_norm/W", "clipped_norm/U", "clipped_norm/b", "clipped_norm/total", "clip_threshold", "clipped"]
NAN, INF = math.nan, math.inf


def read_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.reader(file))


def new_recorder(path: Path, names: list[str] = NAMES, norms_recorded: bool = True) -> StepRecorder:
    return StepRecorder(CsvLog(path, MetricsColumns.of(names).header), list(names), norms_recorded)


def record(recorder: StepRecorder, step: int, loss: float, before: list[float], after: list[float],
           threshold: float = NAN, clipped: bool = False, epoch: int = 1, lr: float = 0.1) -> None:
    """One step as the runner records it: a float32 loss, float64 norm vectors, 0-d threshold and bool."""
    recorder.record(step, epoch, lr, torch.tensor(loss, dtype=torch.float32),
                    torch.tensor(before, dtype=torch.float64), torch.tensor(after, dtype=torch.float64),
                    torch.tensor(threshold, dtype=torch.float32), torch.tensor(clipped), [])


def l2(values: list[float]) -> float:
    return math.sqrt(sum(value * value for value in values))


def same_number(text: str, value: float) -> bool:
    return math.isnan(value) and float(text) != float(text) or float(text) == value


# --- gradient_norms -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_norms_are_torchs_vector_norms_in_float64(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(3, 4, generator=generator, dtype=dtype), torch.randn(5, generator=generator, dtype=dtype),
             torch.randn(2, 2, 2, generator=generator, dtype=dtype), torch.zeros(4, dtype=dtype)]
    norms = gradient_norms(grads)
    assert norms.dtype == torch.float64 and norms.shape == (4,)
    reference = torch.stack([torch.linalg.vector_norm(grad.double()) for grad in grads])
    torch.testing.assert_close(norms, reference, rtol=1e-15, atol=0)
    assert norms[3].item() == 0.0


def test_gradient_norms_by_hand_and_beyond_float32s_range() -> None:
    grads = [torch.tensor([3.0, 4.0]), torch.tensor([[1.0, 2.0], [2.0, 4.0]]), torch.tensor(-7.0),
             # squares that overflow / underflow float32, but not float64
             torch.tensor([1e30, 1e30]), torch.tensor([1e-30, 1e-30])]
    norms = gradient_norms(grads).tolist()
    assert norms[:3] == [5.0, 5.0, 7.0]
    assert norms[3] == pytest.approx(math.sqrt(2) * float(np.float32(1e30)), rel=1e-15)
    assert norms[4] == pytest.approx(math.sqrt(2) * float(np.float32(1e-30)), rel=1e-15)


# --- StepRecorder: rows ---------------------------------------------------------------------------------------------

def test_rows_are_written_at_flush_with_the_recorded_values(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    recorder = new_recorder(path)
    steps = [
        # step, epoch, lr, loss, before, after, threshold, clipped
        (1, 1, 0.1, 2.25, [3.0, 4.0, 12.0], [3.0, 4.0, 12.0], NAN, False),
        (2, 1, 0.05, 1.5, [0.1 + 0.2, 1e-300, 2.5], [0.3, 1e-300, 0.75], 1.0, True),
        (3, 2, 1e-3, 0.125, [6.0, 8.0, 0.0], [0.6, 0.8, 0.0], 1.0, True),
    ]
    for step, epoch, lr, loss, before, after, threshold, clipped in steps:
        record(recorder, step, loss, before, after, threshold, clipped, epoch=epoch, lr=lr)
        assert recorder.pending == step
    assert read_rows(path) == [HEADER]  # nothing before flush
    assert recorder.flush() is None
    assert recorder.pending == 0

    rows = read_rows(path)
    assert rows[0] == HEADER == MetricsColumns.of(NAMES).header
    assert len(rows) == 1 + len(steps)
    for row, (step, epoch, lr, loss, before, after, threshold, clipped) in zip(rows[1:], steps):
        values = dict(zip(HEADER, row))
        assert (int(values["step"]), int(values["epoch"]), float(values["lr"])) == (step, epoch, lr)
        assert float(values["loss"]) == loss
        for name, norm_before, norm_after in zip(NAMES, before, after):
            assert float(values[f"grad_norm/{name}"]) == norm_before
            assert float(values[f"clipped_norm/{name}"]) == norm_after
        assert float(values["grad_norm/total"]) == pytest.approx(l2(before), rel=1e-15)
        assert float(values["clipped_norm/total"]) == pytest.approx(l2(after), rel=1e-15)
        assert values[CLIP_THRESHOLD] == ("" if math.isnan(threshold) else format(threshold))
        assert values[CLIPPED] == ("1" if clipped else "0")
    # totals exact where the hand computation is: sqrt(9 + 16 + 144) = 13, sqrt(36 + 64) = 10
    assert float(rows[1][7]) == 13.0 and float(rows[3][7]) == 10.0
    assert recorder.log.size == path.stat().st_size


def test_a_float32_loss_and_threshold_are_written_as_their_exact_values(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    recorder = new_recorder(path, ["w"])
    record(recorder, 1, 0.1, [1.0], [0.1], threshold=0.1, clipped=True)
    recorder.flush()
    values = dict(zip(MetricsColumns.of(["w"]).header, read_rows(path)[1]))
    assert float(values["loss"]) == float(np.float32(0.1))
    assert float(values[CLIP_THRESHOLD]) == float(np.float32(0.1))


def test_each_flush_appends_its_block_and_an_empty_flush_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    recorder = new_recorder(path, ["w"])
    assert recorder.flush() is None
    assert read_rows(path) == [MetricsColumns.of(["w"]).header]
    for block in range(3):
        for step in range(block * 2 + 1, block * 2 + 3):
            record(recorder, step, float(step), [float(step)], [float(step)])
        assert recorder.pending == 2
        assert recorder.flush() is None
        assert [row[0] for row in read_rows(path)[1:]] == [str(step) for step in range(1, block * 2 + 3)]


# --- StepRecorder: divergence ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_loss", [NAN, INF, -INF])
def test_a_non_finite_loss_ends_the_block_at_its_row(tmp_path: Path, bad_loss: float) -> None:
    path = tmp_path / "metrics.csv"
    recorder = new_recorder(path)
    record(recorder, 1, 1.0, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    record(recorder, 2, bad_loss, [1.0, 2.0, 2.0], [1.0, 2.0, 2.0], epoch=3)
    record(recorder, 3, NAN, [INF, 1.0, 1.0], [1.0, 1.0, 1.0])
    record(recorder, 4, 1.0, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert recorder.flush() == Divergence(step=2, epoch=3, parameter="loss")
    assert recorder.pending == 0
    rows = read_rows(path)
    assert [row[0] for row in rows[1:]] == ["1", "2"]  # the diverging row is written, none after it
    assert same_number(rows[2][2], bad_loss)
    assert float(rows[2][7]) == 3.0  # sqrt(1 + 4 + 4)


@pytest.mark.parametrize("before, culprit", [
    ([1.0, INF, 1.0], "U"),
    ([1.0, 1.0, NAN], "b"),
    ([NAN, INF, 1.0], "W"),  # the first non-finite parameter in the header's order
    ([1.0, -INF, NAN], "U"),
])
def test_a_non_finite_norm_before_clipping_ends_the_block_naming_its_parameter(tmp_path: Path, before, culprit
                                                                                 ) -> None:
    path = tmp_path / "metrics.csv"
    recorder = new_recorder(path)
    record(recorder, 1, 1.0, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    record(recorder, 2, 1.0, [2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    record(recorder, 3, 1.0, before, [1.0, 1.0, 1.0], epoch=2)
    record(recorder, 4, NAN, [NAN, NAN, NAN], [1.0, 1.0, 1.0])
    assert recorder.flush() == Divergence(step=3, epoch=2, parameter=culprit)
    rows = read_rows(path)
    assert [row[0] for row in rows[1:]] == ["1", "2", "3"]
    for text, value in zip(rows[3][4:7], before):
        assert same_number(text, value)


def test_a_parameter_is_named_rather_than_the_loss_when_both_are_non_finite(tmp_path: Path) -> None:
    recorder = new_recorder(tmp_path / "metrics.csv")
    record(recorder, 1, NAN, [1.0, 1.0, INF], [1.0, 1.0, 1.0])
    assert recorder.flush() == Divergence(step=1, epoch=1, parameter="b")


def test_divergence_in_a_later_block_names_that_blocks_step(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    recorder = new_recorder(path, ["w"])
    for step in (1, 2):
        record(recorder, step, 1.0, [1.0], [1.0])
    assert recorder.flush() is None
    record(recorder, 3, INF, [1.0], [1.0], epoch=2)
    record(recorder, 4, 1.0, [1.0], [1.0], epoch=2)
    assert recorder.flush() == Divergence(step=3, epoch=2, parameter="loss")
    assert [row[0] for row in read_rows(path)[1:]] == ["1", "2", "3"]


def test_a_non_finite_norm_after_clipping_alone_is_not_a_divergence(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    recorder = new_recorder(path)
    record(recorder, 1, 1.0, [1.0, 1.0, 1.0], [NAN, 1.0, 1.0])
    record(recorder, 2, 1.0, [1.0, 1.0, 1.0], [1.0, INF, 1.0])
    record(recorder, 3, 1.0, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert recorder.flush() is None
    rows = read_rows(path)
    assert [row[0] for row in rows[1:]] == ["1", "2", "3"]
    assert math.isnan(float(rows[1][8])) and math.isinf(float(rows[2][9]))


def test_with_norms_not_recorded_only_the_loss_is_watched(tmp_path: Path) -> None:
    # The runner records NaN placeholders as the norms when record.norms is false.
    path = tmp_path / "metrics.csv"
    recorder = new_recorder(path, norms_recorded=False)
    for step in (1, 2, 3):
        record(recorder, step, 1.0 / step, [NAN, NAN, NAN], [NAN, NAN, NAN])
    assert recorder.flush() is None
    assert [row[0] for row in read_rows(path)[1:]] == ["1", "2", "3"]

    other = new_recorder(tmp_path / "other.csv", norms_recorded=False)
    record(other, 1, 1.0, [INF, 1.0, 1.0], [1.0, 1.0, 1.0])
    record(other, 2, INF, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    record(other, 3, 1.0, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert other.flush() == Divergence(step=2, epoch=1, parameter="loss")
    assert [row[0] for row in read_rows(tmp_path / "other.csv")[1:]] == ["1", "2"]


def test_with_norms_not_recorded_a_diverging_loss_is_blamed_on_the_loss(tmp_path: Path) -> None:
    recorder = new_recorder(tmp_path / "metrics.csv", norms_recorded=False)
    record(recorder, 1, 1.0, [NAN, NAN, NAN], [NAN, NAN, NAN])
    record(recorder, 2, NAN, [NAN, NAN, NAN], [NAN, NAN, NAN])
    assert recorder.flush() == Divergence(step=2, epoch=1, parameter="loss")


def test_a_total_that_overflows_from_finite_norms_is_blamed_on_the_total(tmp_path: Path) -> None:
    recorder = new_recorder(tmp_path / "metrics.csv")
    record(recorder, 1, 1.0, [1e200, 1e200, 1.0], [1.0, 1.0, 1.0])  # each finite; their L2 norm is not
    assert not math.isfinite(l2([1e200, 1e200, 1.0]))
    assert recorder.flush() == Divergence(step=1, epoch=1, parameter="total")


# --- StepRecorder: statistics ---------------------------------------------------------------------------------------

# (loss, before, after, threshold, clipped) per step, for parameters W, U, b
STEPS = [
    (2.0, [3.0, 4.0, 12.0], [3.0, 4.0, 12.0], NAN, False),
    (1.5, [30.0, 40.0, 0.0], [0.6, 0.8, 0.0], 1.0, True),
    (1.25, [1.0, 2.0, 2.0], [1.0, 2.0, 2.0], 5.0, False),
    (1.0, [0.5, 7.0, 0.25], [0.5, 7.0, 0.25], 10.0, False),
    (0.75, [100.0, 1.0, 1.0], [9.9, 0.1, 0.1], 10.0, True),
]


def expected_statistics(steps) -> dict:
    def finite(values):
        return [value for value in values if math.isfinite(value)]

    befores = [list(before) + [l2(before)] for _, before, _, _, _ in steps]
    afters = [list(after) + [l2(after)] for _, _, after, _, _ in steps]
    names = NAMES + ["total"]
    return {
        "max_grad_norm": {name: max(finite(row[i] for row in befores)) for i, name in enumerate(names)},
        "median_grad_norm": {name: statistics.median(finite(row[i] for row in befores))
                             for i, name in enumerate(names)},
        "max_clipped_norm": {name: max(finite(row[i] for row in afters)) for i, name in enumerate(names)},
        "clip_fraction": sum(clipped for *_, clipped in steps) / len(steps),
        "median_depth_ratio": None,  # these recorders have no depth_layers
        "final_loss": steps[-1][0],
    }


def assert_statistics(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for key in ("max_grad_norm", "median_grad_norm", "max_clipped_norm"):
        assert list(actual[key]) == list(expected[key])
        assert actual[key] == pytest.approx(expected[key], rel=1e-15)
    assert actual["clip_fraction"] == expected["clip_fraction"]
    assert actual["median_depth_ratio"] == expected["median_depth_ratio"]
    assert actual["final_loss"] == expected["final_loss"]


def record_all(recorder: StepRecorder, steps, first_step: int = 1) -> None:
    for step, (loss, before, after, threshold, clipped) in enumerate(steps, start=first_step):
        record(recorder, step, loss, before, after, threshold, clipped)


def test_statistics_by_hand(tmp_path: Path) -> None:
    recorder = new_recorder(tmp_path / "metrics.csv")
    record_all(recorder, STEPS[:2])
    recorder.flush()
    record_all(recorder, STEPS[2:], first_step=3)
    recorder.flush()
    stats = recorder.statistics()
    assert_statistics(stats, expected_statistics(STEPS))
    # a few by hand: max of W before = 100, median of U before = median(4, 40, 2, 7, 1) = 4,
    # max of U after = 7, median of totals over 5 rows is the middle one, clipped 2 of 5
    assert stats["max_grad_norm"]["W"] == 100.0
    assert stats["median_grad_norm"]["U"] == 4.0
    assert stats["max_clipped_norm"]["U"] == 7.0
    assert stats["median_grad_norm"]["total"] == 13.0  # totals: 13, 50, 3, ~7.02, ~100.01
    assert stats["clip_fraction"] == 0.4
    assert stats["final_loss"] == 0.75


def test_statistics_of_an_even_number_of_rows_take_the_mean_of_the_middle_two(tmp_path: Path) -> None:
    recorder = new_recorder(tmp_path / "metrics.csv")
    record_all(recorder, STEPS[:4])
    recorder.flush()
    assert recorder.statistics()["median_grad_norm"]["W"] == (1.0 + 3.0) / 2
    assert_statistics(recorder.statistics(), expected_statistics(STEPS[:4]))


def test_statistics_leave_out_non_finite_norms_and_end_at_the_diverging_row(tmp_path: Path) -> None:
    recorder = new_recorder(tmp_path / "metrics.csv")
    diverging = (NAN, [2.0, INF, 1.0], [NAN, NAN, NAN], 10.0, True)
    never_written = (0.5, [1000.0, 1000.0, 1000.0], [1.0, 1.0, 1.0], 10.0, True)
    record_all(recorder, STEPS[:3] + [diverging, never_written])
    assert recorder.flush() == Divergence(step=4, epoch=1, parameter="U")
    stats = recorder.statistics()
    # W and b count the diverging row's finite norms; U and the total (inf) leave it out
    assert stats["max_grad_norm"] == {"W": 30.0, "U": 40.0, "b": 12.0, "total": 50.0}
    assert stats["median_grad_norm"]["W"] == statistics.median([3.0, 30.0, 1.0, 2.0])
    assert stats["median_grad_norm"]["U"] == statistics.median([4.0, 40.0, 2.0])
    assert stats["max_clipped_norm"]["W"] == 3.0
    assert stats["clip_fraction"] == 2 / 4
    assert math.isnan(stats["final_loss"])  # the last row written is the diverging one


def test_statistics_with_norms_not_recorded_have_no_norms(tmp_path: Path) -> None:
    recorder = new_recorder(tmp_path / "metrics.csv", norms_recorded=False)
    record(recorder, 1, 2.0, [NAN] * 3, [NAN] * 3, NAN, False)
    record(recorder, 2, 1.0, [NAN] * 3, [NAN] * 3, NAN, False)
    recorder.flush()
    stats = recorder.statistics()
    names = NAMES + ["total"]
    assert stats["max_grad_norm"] == stats["median_grad_norm"] == stats["max_clipped_norm"] == dict.fromkeys(names)
    assert stats["clip_fraction"] == 0.0 and stats["final_loss"] == 1.0


def test_statistics_of_an_empty_recorder(tmp_path: Path) -> None:
    recorder = new_recorder(tmp_path / "metrics.csv")
    empty = {"max_grad_norm": {}, "median_grad_norm": {}, "max_clipped_norm": {}, "clip_fraction": None,
             "median_depth_ratio": None, "final_loss": None}
    assert recorder.statistics() == empty
    record(recorder, 1, 1.0, [1.0] * 3, [1.0] * 3)
    assert recorder.statistics() == empty  # recorded but not yet flushed


def test_a_resumed_recorder_has_the_statistics_of_a_single_session(tmp_path: Path) -> None:
    header = MetricsColumns.of(NAMES).header
    single = new_recorder(tmp_path / "single.csv")
    record_all(single, STEPS[:3])
    single.flush()
    record_all(single, STEPS[3:], first_step=4)
    single.flush()

    first = new_recorder(tmp_path / "resumed.csv")
    record_all(first, STEPS[:3])
    first.flush()
    resume_point = first.log.size
    record_all(first, [(9.0, [999.0] * 3, [999.0] * 3, 1.0, True)], first_step=4)  # after the resume point
    first.flush()
    first.log.close()

    second = StepRecorder(CsvLog.resume(tmp_path / "resumed.csv", header, resume_point), list(NAMES))
    second.load_history()
    assert_statistics(second.statistics(), expected_statistics(STEPS[:3]))
    record_all(second, STEPS[3:], first_step=4)
    second.flush()
    second.log.close()
    single.log.close()

    assert second.statistics() == single.statistics()
    assert_statistics(second.statistics(), expected_statistics(STEPS))
    assert (tmp_path / "resumed.csv").read_bytes() == (tmp_path / "single.csv").read_bytes()


def test_load_history_keeps_values_that_only_round_trip_text_preserves(tmp_path: Path) -> None:
    steps = [(0.1 + 0.2, [1e-300, 0.1 + 0.2, 1.0 / 3.0], [1e-300, 0.1, 1.0 / 3.0], NAN, False),
             (1.0 / 3.0, [2.0 / 3.0, 5e-324, 1e300], [2.0 / 3.0, 5e-324, 1.0], 1.0, True)]
    first = new_recorder(tmp_path / "metrics.csv")
    record_all(first, steps)
    first.flush()
    first.log.close()
    second = StepRecorder(CsvLog.resume(tmp_path / "metrics.csv", HEADER, first.log.size), list(NAMES))
    second.load_history()
    assert second.statistics() == first.statistics()


def test_load_history_of_a_log_with_only_its_header_adds_nothing(tmp_path: Path) -> None:
    first = new_recorder(tmp_path / "metrics.csv")
    first.log.close()
    second = StepRecorder(CsvLog.resume(tmp_path / "metrics.csv", HEADER, first.log.size), list(NAMES))
    second.load_history()
    assert second.statistics()["final_loss"] is None


def test_load_history_refuses_a_log_edited_to_hold_text(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    recorder = new_recorder(path)
    record_all(recorder, STEPS[:1])
    recorder.flush()
    recorder.log.close()
    path.write_text(path.read_text().replace("2.0", "two", 1))
    resumed = StepRecorder(CsvLog.resume(path, HEADER, path.stat().st_size), list(NAMES))
    with pytest.raises(DataError) as caught:
        resumed.load_history()
    assert caught.value.path == str(path)


# --- MetricsColumns -------------------------------------------------------------------------------------------------

PARAMETER_SETS = [["w"], NAMES, ["encoder.weight", "encoder.bias", "decoder.weight", "decoder.bias"]]


@pytest.mark.parametrize("names", PARAMETER_SETS)
def test_row_and_block_row_are_inverse_through_the_csv_text(tmp_path: Path, names: list[str]) -> None:
    columns = MetricsColumns.of(names)
    k = len(names)
    generator = np.random.default_rng(k)
    blocks = []
    for threshold, clipped in [(NAN, 0.0), (1.0 / 3.0, 1.0), (2.5, 0.0)]:
        before = list(generator.random(k) * 10.0 ** generator.integers(-5, 5, k))
        after = list(generator.random(k))
        blocks.append([float(generator.random()), *before, l2(before), *after, l2(after), threshold, clipped])
    assert all(len(block) == columns.block_width for block in blocks)

    log = CsvLog(tmp_path / "metrics.csv", columns.header)
    log.write_rows([columns.row(step, 1, 0.01, block) for step, block in enumerate(blocks, start=1)])
    log.close()
    rows = read_rows(tmp_path / "metrics.csv")
    assert rows[0] == columns.header
    assert rows[1][columns.header.index(CLIP_THRESHOLD)] == ""  # NaN threshold: an empty cell
    assert [row[columns.header.index(CLIPPED)] for row in rows[1:]] == ["0", "1", "0"]
    for step, (row, block) in enumerate(zip(rows[1:], blocks), start=1):
        assert row[:2] == [str(step), "1"] and float(row[3]) == 0.01
        np.testing.assert_array_equal(columns.block_row(row), block)  # NaN equals NaN here


@pytest.mark.parametrize("names", PARAMETER_SETS)
def test_the_headers_names_line_up_with_the_blocks_slices(names: list[str]) -> None:
    columns = MetricsColumns.of(names)
    header = columns.header
    k = len(names)
    assert len(header) == 2 * k + 8
    assert header[:4] == ["step", "epoch", "loss", "lr"]
    assert columns.block_width == len(header) - 3  # the block leaves out step, epoch and lr

    def header_of(block_index: int) -> str:
        # block index 0 is the loss (header 2); the rest follow lr, which the block leaves out
        return header[2] if block_index == 0 else header[block_index + 3]

    def indices(part: slice) -> list[int]:
        return list(range(columns.block_width))[part]

    assert header_of(columns.block_loss) == "loss"
    for i, index in enumerate(indices(columns.block_before)):
        assert header[4 + i] == header_of(index)
    assert [header_of(i) for i in indices(columns.block_before)] == [f"grad_norm/{n}" for n in names + ["total"]]
    assert [header_of(i) for i in indices(columns.block_parameters_before)] == [f"grad_norm/{n}" for n in names]
    assert [header_of(i) for i in indices(columns.block_after)] == [f"clipped_norm/{n}" for n in names + ["total"]]
    assert header_of(columns.block_threshold) == "clip_threshold"
    assert header_of(columns.block_clipped) == "clipped"
    # every block index is named exactly once
    named = ([columns.block_loss] + indices(columns.block_before) + indices(columns.block_after)
             + [columns.block_threshold, columns.block_clipped])
    assert sorted(named) == list(range(columns.block_width))
    assert parameter_names(header) == names


def test_a_recorders_row_reads_back_through_block_row(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    recorder = new_recorder(path)
    loss, before, after, threshold, clipped = STEPS[1]
    record(recorder, 1, loss, before, after, threshold, clipped)
    recorder.flush()
    block = MetricsColumns.of(NAMES).block_row(read_rows(path)[1])
    assert block == [loss, *before, l2(before), *after, pytest.approx(l2(after), rel=1e-15), threshold, 1.0]


@pytest.mark.parametrize("dtype, rel", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_largest_singular_values_are_torchs_matrix_2_norm_and_nan_for_a_matrix_that_is_not_finite(dtype,
                                                                                                  rel) -> None:
    generator = torch.Generator().manual_seed(0)
    square = torch.randn(6, 6, generator=generator, dtype=dtype)
    stack = torch.randn(3, 4, 4, generator=generator, dtype=dtype)
    stack[1, 2, 0] = math.inf
    # rank one: the Gram matrix's other eigenvalues are 0 (or a rounding below it)
    rank_one = torch.outer(torch.randn(5, generator=generator, dtype=dtype), torch.randn(5, generator=generator,
                                                                                          dtype=dtype))
    single, stacked = largest_singular_values([square]), largest_singular_values([stack])
    assert single.dtype == torch.float64 and single.shape == (1,) and stacked.shape == (1, 3)
    # the reference in float64, from the same numbers
    assert single[0].item() == pytest.approx(np.linalg.svd(square.double().numpy(), compute_uv=False)[0], rel=rel)
    for index in (0, 2):
        reference = torch.linalg.matrix_norm(stack[index].double(), ord=2).item()
        assert stacked[0, index].item() == pytest.approx(reference, rel=rel)
    assert math.isnan(stacked[0, 1].item())
    assert largest_singular_values([rank_one])[0].item() == pytest.approx(
        torch.linalg.matrix_norm(rank_one.double(), ord=2).item(), rel=rel)
    assert largest_singular_values([torch.zeros(3, 3, dtype=dtype)])[0].item() == 0.0
    # finite, with a Gram matrix MᵀM that would overflow (a diverging run's U)
    factor = torch.finfo(dtype).max / 8
    assert largest_singular_values([square * factor])[0].item() == pytest.approx(
        torch.linalg.matrix_norm(square.double(), ord=2).item() * factor, rel=rel)


def test_update_ratios_of_every_step_and_parameter_at_once() -> None:
    """Each step's ‖θ_s − θ_{s−1}‖ / ‖θ_{s−1}‖ per parameter, against the norms taken one by one in float64."""
    generator = torch.Generator().manual_seed(1)
    shapes = [(3, 4), (4,), (2, 2, 2)]
    steps = [[torch.randn(shape, generator=generator) for shape in shapes] for _ in range(4)]
    steps[2][1] = steps[1][1].clone()   # a parameter that did not move: ratio 0
    steps[0][2] = torch.zeros(2, 2, 2)  # all zeros, then moved: inf
    ratios = update_ratios(torch.stack([torch.cat([tensor.reshape(-1) for tensor in step]) for step in steps]), [4 * 3, 4, 8])
    assert ratios.dtype == torch.float64 and ratios.shape == (3, 3)
    for s in range(1, 4):
        for k in range(3):
            start, end = steps[s - 1][k].double(), steps[s][k].double()
            expected = float((end - start).norm() / start.norm())
            assert ratios[s - 1, k].item() == pytest.approx(expected, rel=1e-6), (s, k)
    assert ratios[1, 1].item() == 0.0 and ratios[0, 2].item() == math.inf
