"""A small synthetic classification set from scikit-learn's `make_classification` (no download).

It feeds E5's deep sigmoid stack, whose first layer takes 10 inputs (seed 003: 10 -> 5 -> 8 -> ... -> 8).
The rows depend only on `random_state`, which also fixes the stratified split
(default 60% train, 20% dev, 20% test).
"""

from __future__ import annotations

from typing import Annotated


from gradexp.data import DATASETS
from gradexp.data.base import Dataset, DataSpec
from gradexp.data.splits import OpenFraction, stratified_split
from gradexp.errors import ConfigError
from gradexp.value_types import NonNegativeInt, PositiveFloat, PositiveInt, Range


@DATASETS.register("classification")
def classification(
    seed: int,
    *,
    n_samples: Annotated[int, Range(ge=10)] = 1000,
    n_features: PositiveInt = 10,
    n_informative: PositiveInt = 5,
    n_classes: Annotated[int, Range(ge=2)] = 2,
    class_sep: PositiveFloat = 1.0,
    random_state: NonNegativeInt = 0,
    dev_fraction: OpenFraction = 0.2,
    test_fraction: OpenFraction = 0.2,
) -> Dataset:
    """`make_classification` with two clusters per class; the rest of its features are redundant or noise."""
    from sklearn.datasets import make_classification

    if n_informative > n_features:
        raise ConfigError("", "data.n_informative", f"expected at most n_features ({n_features}), got {n_informative}")
    if 2 * n_classes > 2 ** n_informative:
        raise ConfigError("", "data.n_informative", f"{n_classes} classes of 2 clusters need at least "
                                                    f"{(2 * n_classes - 1).bit_length()} informative features")
    inputs, labels = make_classification(
        n_samples=n_samples, n_features=n_features, n_informative=n_informative,
        n_redundant=min(2, n_features - n_informative), n_classes=n_classes, class_sep=class_sep,
        random_state=random_state)
    train, dev, test = stratified_split(inputs, labels, dev_fraction=dev_fraction, test_fraction=test_fraction,
                                        seed=random_state)
    spec = DataSpec(task="classification", input_shape=(n_features,), output_dim=n_classes)
    return Dataset(spec=spec, train=train, dev=dev, test=test)
