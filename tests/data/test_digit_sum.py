"""The digit-sum generator and reader against E1's definition (seed 002)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from gradexp.data import DATASETS
from gradexp.data.digit_sum import NUM_CLASSES, SPLIT_FILES, format_examples, generate_examples, write_dataset
from gradexp.errors import ConfigError, DataError


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
    train = DATASETS.get("digit_sum")(0, length=6, train_copies=50, generator="seeded").train.inputs.numpy()
    noisy = train[:, 2:]
    assert set(np.flatnonzero(noisy.any(axis=0)) + 2) == {2, 3, 4, 5}
    assert set(noisy[noisy != 0].tolist()) == set(range(1, 10))


def test_seeded_same_seed_same_data_other_seed_other_data() -> None:
    build = functools.partial(DATASETS.get("digit_sum"), length=10, generator="seeded")
    first, again, other = build(3), build(3), build(4)
    assert torch.equal(first.train.inputs, again.train.inputs)
    assert not torch.equal(first.train.inputs, other.train.inputs)
    assert not torch.equal(first.dev.inputs, first.test.inputs)


def the_books_loop() -> dict[tuple[int, str], list[str]]:
    """The book's data generation as its notebook writes it, with NumPy's global generator: each split's lines
    in its text format, by (length, split)."""
    np.random.seed(0)
    files = {}
    for length in (5, 10, 15, 20, 25, 30, 35):
        for split, copies in (("train", 3), ("dev", 1), ("test", 1)):
            lines = []
            for first in range(10):
                for second in range(10):
                    base = [first, second] + [0] * (length - 2)
                    for _ in range(copies):
                        noisy = list(base)
                        position = np.random.randint(2, length)
                        noisy[position] = np.random.randint(0, 10)
                        lines.append(" ".join(map(str, noisy)) + f"\t{first + second}")
            files[(length, split)] = lines
    return files


def test_the_book_generator_is_the_books_whole_loop_whatever_the_seed() -> None:
    expected = the_books_loop()
    for length in (5, 20, 35):
        for seed in (0, 7):
            dataset = DATASETS.get("digit_sum")(seed, length=length)
            for split in ("train", "dev", "test"):
                written = format_examples(getattr(dataset, split).inputs.numpy(), getattr(dataset, split).targets.numpy())
                assert written.splitlines() == expected[(length, split)], (length, split, seed)


def test_one_length_drawn_alone_is_not_the_loops() -> None:
    alone = np.random.RandomState(0)
    train_alone, _ = generate_examples(20, 3, alone.randint)
    assert not np.array_equal(train_alone, DATASETS.get("digit_sum")(0, length=20).train.inputs.numpy())


def test_the_book_generator_makes_only_the_books_lengths() -> None:
    with pytest.raises(ConfigError, match="data.length: the book's generator makes lengths 5, 10, 15, 20, 25, 30, 35, "
                                          "not 7; use data.generator: seeded"):
        DATASETS.get("digit_sum")(0, length=7)


def test_reads_the_book_text_format(tmp_path: Path) -> None:
    write_dataset(tmp_path, length=7, seed=5)
    line = (tmp_path / "train.txt").read_text().splitlines()[0]
    digits, label = line.split("\t")
    assert len(digits.split(" ")) == 7 and int(label) == int(digits.split(" ")[0]) + int(digits.split(" ")[1])
    from_files = DATASETS.get("digit_sum")(0, length=7, path=str(tmp_path))
    generated = DATASETS.get("digit_sum")(5, length=7, generator="seeded")
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


def test_the_books_length_20_train_file_has_296_unique_rows() -> None:
    """What is known of the book's own datasets/20/train.txt: 296 of its 300 rows are unique (drawing the digit
    before the position gives 295)."""
    train = DATASETS.get("digit_sum")(0, length=20).train.inputs.numpy()
    assert len(np.unique(train, axis=0)) == 296


def test_gradexp_data_writes_the_config_splits_and_refuses_to_overwrite(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gradexp.cli import main
    from tests.conftest import CONFIGS

    runner = CliRunner()
    written = runner.invoke(main, ["data", str(CONFIGS / "srn_explode.yaml"), "--out", str(tmp_path / "20")])
    assert written.exit_code == 0, written.output
    expected = the_books_loop()
    for split in ("train", "dev", "test"):
        assert (tmp_path / "20" / f"{split}.txt").read_text().splitlines() == expected[(20, split)]
    again = runner.invoke(main, ["data", str(CONFIGS / "srn_explode.yaml"), "--out", str(tmp_path / "20")])
    assert again.exit_code == 2 and "train.txt: exists; give --force to replace it" in again.output
    other = runner.invoke(main, ["data", str(CONFIGS / "mlp_regression_explode.yaml"), "--out", str(tmp_path / "x")])
    assert other.exit_code == 2 and "data.name" in other.output and not (tmp_path / "x").exists()
