"""scikit-learn's bundled 8x8 digits (1,797 images, 10 classes): E4's stand-in for MNIST, no download needed.

Each image is flattened to 64 pixel values in 0..16 and divided by `scale`. The split is stratified
and fixed by `split_seed` (default: 70% train, 10% dev, 20% test, i.e. 1,257 / 180 / 360 images).
"""

from __future__ import annotations


from gradexp.data import DATASETS
from gradexp.data.base import Dataset, DataSpec
from gradexp.data.splits import OpenFraction, stratified_split
from gradexp.value_types import NonNegativeInt, PositiveFloat


@DATASETS.register("digits")
def digits(
    seed: int,
    *,
    scale: PositiveFloat = 16.0,
    dev_fraction: OpenFraction = 0.1,
    test_fraction: OpenFraction = 0.2,
    split_seed: NonNegativeInt = 0,
) -> Dataset:
    """Pixels x / scale (the default 16 maps them to [0, 1]); the split ignores the run's seed."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    train, dev, test = stratified_split(bunch.data / scale, bunch.target, dev_fraction=dev_fraction,
                                        test_fraction=test_fraction, seed=split_seed)
    spec = DataSpec(task="classification", input_shape=(bunch.data.shape[1],), output_dim=len(bunch.target_names))
    return Dataset(spec=spec, train=train, dev=dev, test=test)
