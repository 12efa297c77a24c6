"""The digit-sum generator and reader against E1's definition (seed 002)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gradexp.data import DATASETS
from gradexp.data.digit_sum import NUM_CLASSES, SPLIT_FILES, write_dataset
from gradexp.errors import DataError


@pytest.mark.parametrize("length", [5, 20, 35])
def test_splits_follow_the_book(length: int) -> None:
    dataset = DATASETS.get("digit_sum")(0, length=length)
    assert (len(dataset.train), len(dataset.dev), len(dataset.test)) == (300, 100, 100)
    assert dataset.spec.output_dim == NUM_CLASSES == 19 and dataset.spec.input_shape == (length,)
    for split, copies in ((dataset.train, 3), (dataset.dev, 1), (dataset.test, 1)):
        sequences, labels = split.inputs.numpy(), split.targets.numpy()
        assert sequences.shape == (100 * copies, length)
        assert np.array_equal(labels, sequences[:, 0] + sequences[:, 1])
        # every (a, b) pair appears exactly `copies` times
        pairs, counts = np.unique(sequences[:, :2], axis=0, return_counts=True)
        assert len(pairs) == 100 and set(counts) == {copies}
        # at most one position in 2..L-1 is non-zero (the replaced digit may itself be 0)
        assert ((sequences[:, 2:] != 0).sum(axis=1) <= 1).all()
        assert sequences.min() >= 0 and sequences.max() <= 9


def test_noise_reaches_every_position_and_digit() -> None:
    train = DATASETS.get("digit_sum")(0, length=6, train_copies=50).train.inputs.numpy()
    noisy = train[:, 2:]
    assert set(np.flatnonzero(noisy.any(axis=0)) + 2) == {2, 3, 4, 5}
    assert set(noisy[noisy != 0].tolist()) == set(range(1, 10))


def test_same_seed_same_data_other_seed_other_data() -> None:
    build = DATASETS.get("digit_sum")
    first, again, other = build(3, length=10), build(3, length=10), build(4, length=10)
    assert torch.equal(first.train.inputs, again.train.inputs)
    assert not torch.equal(first.train.inputs, other.train.inputs)
    assert not torch.equal(first.dev.inputs, first.test.inputs)


def test_reads_the_book_text_format(tmp_path: Path) -> None:
    write_dataset(tmp_path, length=7, seed=5)
    line = (tmp_path / "train.txt").read_text().splitlines()[0]
    digits, label = line.split("\t")
    assert len(digits.split(" ")) == 7 and int(label) == int(digits.split(" ")[0]) + int(digits.split(" ")[1])
    from_files = DATASETS.get("digit_sum")(0, length=7, path=str(tmp_path))
    generated = DATASETS.get("digit_sum")(5, length=7)
    for split in ("train", "dev", "test"):
        assert torch.equal(getattr(from_files, split).inputs, getattr(generated, split).inputs)
        assert torch.equal(getattr(from_files, split).targets, getattr(generated, split).targets)


@pytest.mark.parametrize("bad_line, why", [
    ("1 2 0 0 0\t3", "wrong length"),
    ("1 2 0 0 0 0 x\t3", "not a digit"),
    ("1 2 0 0 0 0 0 3", "no tab"),
    ("1 2 0 0 0 0 0\t19", "label out of range"),
])
def test_malformed_file_names_file_and_line(tmp_path: Path, bad_line: str, why: str) -> None:
    write_dataset(tmp_path, length=7, seed=0)
    lines = (tmp_path / "dev.txt").read_text().splitlines()
    lines[4] = bad_line
    (tmp_path / "dev.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"dev\.txt: line 5: expected 7 digits"):
        DATASETS.get("digit_sum")(0, length=7, path=str(tmp_path))


def test_missing_folder_or_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        DATASETS.get("digit_sum")(0, path=str(tmp_path / "absent"))
    write_dataset(tmp_path, length=20, seed=0)
    (tmp_path / SPLIT_FILES[2]).unlink()
    with pytest.raises(DataError, match=r"test\.txt: no such file"):
        DATASETS.get("digit_sum")(0, path=str(tmp_path))
