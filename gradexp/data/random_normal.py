"""E3's data (seed 001, PyTorch): every epoch one batch of fresh standard-normal inputs and targets.

The article draws `torch.randn(64, 10)` inputs and `torch.randn(64, 1)` targets anew each epoch,
so nothing can be learned and the MSE hovers around 1, the targets' variance. Here each epoch's
batch comes from the run's own generator (`Dataset.resample_train`, called at every epoch start),
so a run is reproducible from its seed. `train` is one fixed draw of the same size, which sizes
the epoch and serves tools that need a fixed batch (gradient checking); dev and test are fixed
draws of `eval_samples` rows from a numpy stream separate from the run's, so they never repeat
a training batch.
"""

from __future__ import annotations

import numpy as np
import torch

from gradexp.data import DATASETS
from gradexp.data.base import Dataset, DataSpec, Split
from gradexp.value_types import PositiveInt

# Second entropy word for the fixed draws, so their stream differs from any other use of the seed.
FIXED_DRAWS_STREAM = 3


@DATASETS.register("random")
def random_normal(
    seed: int,
    *,
    samples: PositiveInt = 64,
    n_features: PositiveInt = 10,
    targets: PositiveInt = 1,
    eval_samples: PositiveInt = 1000,
) -> Dataset:
    """Inputs x ~ N(0, I_n_features) and targets y ~ N(0, I_targets), independent of each other."""
    rng = np.random.default_rng([seed, FIXED_DRAWS_STREAM])

    def fixed_draw(rows: int) -> Split:
        return Split(torch.from_numpy(rng.standard_normal((rows, n_features))),
                     torch.from_numpy(rng.standard_normal((rows, targets))))

    def fresh_batch(generator: torch.Generator) -> Split:
        return Split(torch.randn(samples, n_features, generator=generator, dtype=torch.float64),
                     torch.randn(samples, targets, generator=generator, dtype=torch.float64))

    spec = DataSpec(task="regression", input_shape=(n_features,), output_dim=targets)
    return Dataset(spec=spec, train=fixed_draw(samples), dev=fixed_draw(eval_samples), test=fixed_draw(eval_samples),
                   resample_train=fresh_batch)
