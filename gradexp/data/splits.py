"""Deterministic train/dev/test splits of a labelled array, shared by the datasets that carve their own."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import torch

from gradexp.data.base import Split
from gradexp.errors import ConfigError
from gradexp.value_types import Range

# A split's share of the rows: more than none, less than all.
OpenFraction = Annotated[float, Range(gt=0, lt=1)]


def stratified_split(inputs: np.ndarray, labels: np.ndarray, *, dev_fraction: float, test_fraction: float,
                     seed: int) -> tuple[Split, Split, Split]:
    """Split into train/dev/test holding `dev_fraction` and `test_fraction` of the rows, each class in proportion.

    The same `seed` always gives the same rows (scikit-learn's `train_test_split` with `stratify`), so
    runs that vary only the training seed are scored on the same test set.
    """
    from sklearn.model_selection import train_test_split

    if dev_fraction + test_fraction >= 1:
        raise ConfigError("", "data.dev_fraction", f"dev_fraction + test_fraction must leave rows to train on, "
                                                   f"got {dev_fraction} + {test_fraction}")
    rows = np.arange(len(labels))
    rest, test = train_test_split(rows, test_size=test_fraction, stratify=labels, random_state=seed)
    train, dev = train_test_split(rest, test_size=dev_fraction / (1 - test_fraction), stratify=labels[rest],
                                  random_state=seed)
    return tuple(Split(torch.from_numpy(inputs[part]), torch.from_numpy(labels[part]).long())
                 for part in (train, dev, test))
