"""The digit-sum task of E1 (NNDL practice book 6.1/6.2, seed 002).

Base set: for every pair (a, b) in 0..9 x 0..9 the sequence [a, b, 0, ..., 0] of length L with
label a + b (19 classes). Each base sequence yields k copies in which one random position in
2..L-1 holds a random digit; the label stays a + b. Train uses k = 3, dev and test k = 1,
giving 300 / 100 / 100 examples. The book stores each split as text, one example a line:
the digits separated by spaces, a tab, the label; `path` reads such files (train.txt, dev.txt, test.txt).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch

from gradexp.data import DATASETS
from gradexp.data.base import Dataset, DataSpec, Split
from gradexp.errors import DataError
from gradexp.value_types import PositiveInt, Range

NUM_DIGITS = 10
NUM_CLASSES = 2 * (NUM_DIGITS - 1) + 1
SPLIT_FILES = ("train.txt", "dev.txt", "test.txt")


def generate_examples(length: int, copies: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`copies` noisy copies of each of the 100 base sequences, in the book's order."""
    sequences, labels = [], []
    for first in range(NUM_DIGITS):
        for second in range(NUM_DIGITS):
            for _ in range(copies):
                sequence = np.zeros(length, dtype=np.int64)
                sequence[0], sequence[1] = first, second
                sequence[rng.integers(2, length)] = rng.integers(0, NUM_DIGITS)
                sequences.append(sequence)
                labels.append(first + second)
    return np.stack(sequences), np.asarray(labels, dtype=np.int64)


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


def write_dataset(folder: Path, length: int, seed: int, train_copies: int = 3, eval_copies: int = 1) -> list[Path]:
    """Write generated train/dev/test files in the book's format; returns their paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, copies in zip(SPLIT_FILES, (train_copies, eval_copies, eval_copies)):
        target = folder / file_name
        target.write_text(format_examples(*generate_examples(length, copies, rng)), encoding="utf-8")
        written.append(target)
    return written


@DATASETS.register("digit_sum")
def digit_sum(
    seed: int,
    *,
    length: Annotated[int, Range(ge=3)] = 20,
    train_copies: PositiveInt = 3,
    eval_copies: PositiveInt = 1,
    path: Optional[str] = None,
) -> Dataset:
    """Generate the splits from `seed`, or read them from the book's text files in folder `path`."""
    if path is not None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise DataError(str(folder), "no such folder (expected train.txt, dev.txt and test.txt inside)")
        train, dev, test = (read_examples(folder / file_name, length) for file_name in SPLIT_FILES)
    else:
        rng = np.random.default_rng(seed)
        train, dev, test = (
            Split(*map(torch.from_numpy, generate_examples(length, copies, rng)))
            for copies in (train_copies, eval_copies, eval_copies)
        )
    spec = DataSpec(task="classification", input_shape=(length,), output_dim=NUM_CLASSES, vocab_size=NUM_DIGITS)
    return Dataset(spec=spec, train=train, dev=dev, test=test)
