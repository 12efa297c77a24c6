"""The digit-sum task of E1 (NNDL practice book 6.1/6.2, seed 002).

Base set: for every pair (a, b) in 0..9 x 0..9 the sequence [a, b, 0, ..., 0] of length L with
label a + b (19 classes). Each base sequence yields k copies in which one random position in
2..L-1 holds a random digit; the label stays a + b. Train uses k = 3, dev and test k = 1,
giving 300 / 100 / 100 examples. The book stores each split as text, one example a line:
the digits separated by spaces, a tab, the label; `path` reads such files (train.txt, dev.txt, test.txt).

Two generators draw the copies. `book` (the default) repeats the book's own loop: NumPy's global
generator seeded once with 0, then every length of BOOK_LENGTHS in turn and, within each, train, dev and
test, each copy drawing its position (np.random.randint(2, L)) and then its digit (np.random.randint(0,
10)); the data of one length depend on every length before it, so the whole loop is run (and kept) to
give any one of them, and they do not depend on the run's seed. `seeded` draws each length's splits from
the run's seed alone (numpy's default_rng), so every seed trains on other data.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Callable, Literal, Optional

import numpy as np
import torch

from gradexp.data import DATASETS
from gradexp.data.base import Dataset, DataSpec, Split
from gradexp.errors import ConfigError, DataError, OutputError
from gradexp.recording.files import write_bytes
from gradexp.value_types import PositiveInt, Range

NUM_DIGITS = 10
NUM_CLASSES = 2 * (NUM_DIGITS - 1) + 1
SPLIT_FILES = ("train.txt", "dev.txt", "test.txt")
# The book's loop: these lengths in this order, NumPy's global generator seeded with this.
BOOK_LENGTHS = (5, 10, 15, 20, 25, 30, 35)
BOOK_SEED = 0
Generator = Literal["book", "seeded"]
Examples = tuple[np.ndarray, np.ndarray]
# draw(low, high): a random integer in [low, high), as np.random.randint and Generator.integers give it
Draw = Callable[[int, int], int]


def generate_examples(length: int, copies: int, draw: Draw) -> Examples:
    """`copies` noisy copies of each of the 100 base sequences, in the book's order: for each copy the position
    is drawn first, then the digit."""
    sequences, labels = [], []
    for first in range(NUM_DIGITS):
        for second in range(NUM_DIGITS):
            for _ in range(copies):
                sequence = np.zeros(length, dtype=np.int64)
                sequence[0], sequence[1] = first, second
                position = draw(2, length)
                sequence[position] = draw(0, NUM_DIGITS)
                sequences.append(sequence)
                labels.append(first + second)
    return np.stack(sequences), np.asarray(labels, dtype=np.int64)


@functools.lru_cache(maxsize=4)
def book_splits(train_copies: int = 3, eval_copies: int = 1) -> dict[int, tuple[Examples, Examples, Examples]]:
    """The book's whole loop: for every length of BOOK_LENGTHS, its (train, dev, test) examples, drawn from
    np.random.RandomState(BOOK_SEED) (the legacy global generator np.random.seed(0) seeds) in the book's
    order. Kept: the loop is the same every time."""
    state = np.random.RandomState(BOOK_SEED)
    return {length: tuple(generate_examples(length, copies, state.randint)
                          for copies in (train_copies, eval_copies, eval_copies))
            for length in BOOK_LENGTHS}


def seeded_splits(length: int, seed: int, train_copies: int = 3, eval_copies: int = 1
                  ) -> tuple[Examples, Examples, Examples]:
    """One length's (train, dev, test) examples drawn from `seed` alone."""
    rng = np.random.default_rng(seed)
    return tuple(generate_examples(length, copies, lambda low, high: int(rng.integers(low, high)))
                 for copies in (train_copies, eval_copies, eval_copies))


def format_examples(sequences: np.ndarray, labels: np.ndarray) -> str:
    """The book's text format: digits separated by spaces, a tab, the label."""
    return "".join(" ".join(map(str, seq)) + f"\t{label}\n" for seq, label in zip(sequences.tolist(), labels.tolist()))


def read_examples(path: Path, length: int) -> Split:
    """Read one split in the book's text format, checking every line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(str(path), "no such file (a digit_sum folder holds train.txt, dev.txt and test.txt)") from None
    except (OSError, UnicodeDecodeError) as failure:
        raise DataError(str(path), f"cannot be read ({failure})") from None
    sequences, labels = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        digits_text, tab, label_text = line.strip().partition("\t")
        try:
            digits = [int(token) for token in digits_text.split()]
            label = int(label_text)
        except ValueError:
            digits, label = [], -1
        if not tab or len(digits) != length or not all(0 <= d < NUM_DIGITS for d in digits) \
                or not 0 <= label < NUM_CLASSES:
            raise DataError(str(path), f"line {number}: expected {length} digits 0-9 separated by spaces, "
                                       f"a tab and a label 0-{NUM_CLASSES - 1}, got {line.strip()[:60]!r}")
        sequences.append(digits)
        labels.append(label)
    if not sequences:
        raise DataError(str(path), "holds no examples")
    return Split(torch.tensor(sequences, dtype=torch.long), torch.tensor(labels, dtype=torch.long))


def write_split_files(dataset: Dataset, folder: Path, force: bool = False) -> list[Path]:
    """The dataset's train, dev and test splits as the book's text files in `folder` (created if needed);
    an existing file is replaced only with `force`. Returns the files written."""
    targets = [folder / name for name in SPLIT_FILES]
    existing = [target for target in targets if target.exists()]
    if existing and not force:
        raise OutputError(str(existing[0]), "exists; give --force to replace it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as failure:
        raise OutputError(str(folder), f"cannot create this folder ({failure.strerror or failure})") from None
    for target, split in zip(targets, (dataset.train, dataset.dev, dataset.test)):
        write_bytes(target, format_examples(split.inputs.numpy(), split.targets.numpy()).encode("utf-8"))
    return targets


def write_dataset(folder: Path, length: int, seed: int, train_copies: int = 3, eval_copies: int = 1) -> list[Path]:
    """Write the seeded generator's train/dev/test files in the book's format; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, examples in zip(SPLIT_FILES, seeded_splits(length, seed, train_copies, eval_copies)):
        target = folder / file_name
        target.write_text(format_examples(*examples), encoding="utf-8")
        written.append(target)
    return written


@DATASETS.register("digit_sum")
def digit_sum(
    seed: int,
    *,
    length: Annotated[int, Range(ge=3)] = 20,
    train_copies: PositiveInt = 3,
    eval_copies: PositiveInt = 1,
    generator: Generator = "book",
    path: Optional[str] = None,
) -> Dataset:
    """Generate the splits (`generator`: the book's loop, or from the run's `seed`), or read them from the book's
    text files in folder `path`."""
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DataError(str(folder), "no such folder (expected train.txt, dev.txt and test.txt inside)")
        train, dev, test = (read_examples(folder / file_name, length) for file_name in SPLIT_FILES)
    else:
        if generator == "book" and length not in BOOK_LENGTHS:
            raise ConfigError("", "data.length", f"the book's generator makes lengths "
                                                 f"{', '.join(map(str, BOOK_LENGTHS))}, not {length}; use "
                                                 f"data.generator: seeded for other lengths")
        splits = (book_splits(train_copies, eval_copies)[length] if generator == "book"
                  else seeded_splits(length, seed, train_copies, eval_copies))
        train, dev, test = (Split(*map(torch.from_numpy, examples)) for examples in splits)
    spec = DataSpec(task="classification", input_shape=(length,), output_dim=NUM_CLASSES, vocab_size=NUM_DIGITS)
    return Dataset(spec=spec, train=train, dev=dev, test=test)
