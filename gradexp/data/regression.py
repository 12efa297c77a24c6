"""E2's regression data (seed 000, Keras): scikit-learn's `make_regression`, first rows train, the rest test.

The article's call is `make_regression(n_samples=1000, n_features=20, noise=0.1, random_state=1)`
with the first 500 rows for training and the last 500 for testing; Keras validates on the test
rows, so the dev split *is* the test split here. The rows depend only on `random_state`, never on
the run's seed: every run trains on the article's data.
"""

from __future__ import annotations

import torch

from gradexp.data import DATASETS
from gradexp.data.base import Dataset, DataSpec, Split
from gradexp.errors import ConfigError
from gradexp.value_types import NonNegativeFloat, NonNegativeInt, PositiveInt


@DATASETS.register("regression")
def regression(
    seed: int,
    *,
    n_samples: PositiveInt = 1000,
    n_features: PositiveInt = 20,
    noise: NonNegativeFloat = 0.1,
    random_state: NonNegativeInt = 1,
    train_size: PositiveInt = 500,
) -> Dataset:
    """Rows [0, train_size) train; the rest are both dev and test (targets shaped (n, 1))."""
    from sklearn.datasets import make_regression

    if train_size >= n_samples:
        raise ConfigError("", "data.train_size", f"expected fewer than n_samples ({n_samples}) rows, got {train_size}")
    inputs, targets = make_regression(n_samples=n_samples, n_features=n_features, noise=noise,
                                      random_state=random_state)
    inputs, targets = torch.from_numpy(inputs), torch.from_numpy(targets).reshape(-1, 1)
    train = Split(inputs[:train_size], targets[:train_size])
    test = Split(inputs[train_size:], targets[train_size:])
    spec = DataSpec(task="regression", input_shape=(n_features,), output_dim=1)
    return Dataset(spec=spec, train=train, dev=test, test=test)
