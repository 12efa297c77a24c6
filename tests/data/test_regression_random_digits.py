"""The vector datasets of E2-E5: regression, random, digits and classification, against scikit-learn's own output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_classification, make_regression

from gradexp.data import DATASETS
from gradexp.errors import ConfigError


def rows(tensor: torch.Tensor) -> list[tuple[float, ...]]:
    """The rows of a 2-d tensor as a sorted list, to compare splits as multisets of examples."""
    return sorted(map(tuple, tensor.tolist()))


def test_regression_is_the_articles_data_split_in_half() -> None:
    inputs, targets = make_regression(n_samples=1000, n_features=20, noise=0.1, random_state=1)
    dataset = DATASETS.get("regression")(seed=7)
    assert torch.equal(dataset.train.inputs, torch.from_numpy(inputs[:500]))
    assert torch.equal(dataset.train.targets, torch.from_numpy(targets[:500]).reshape(500, 1))
    assert torch.equal(dataset.test.inputs, torch.from_numpy(inputs[500:]))
    assert torch.equal(dataset.test.targets, torch.from_numpy(targets[500:]).reshape(500, 1))
    assert dataset.dev is dataset.test  # Keras validates on the test rows
    assert dataset.spec.task == "regression" and dataset.spec.input_shape == (20,) and dataset.spec.output_dim == 1
    # The targets are what makes E2 explode: hundreds, not units.
    assert dataset.train.targets.abs().max() > 300


def test_regression_ignores_the_run_seed_and_honours_its_own_settings() -> None:
    builder = DATASETS.get("regression")
    assert torch.equal(builder(seed=0).train.inputs, builder(seed=1).train.inputs)
    small = builder(seed=0, n_samples=100, n_features=3, train_size=60)
    assert (len(small.train), len(small.test), small.spec.input_shape) == (60, 40, (3,))
    with pytest.raises(ConfigError, match="data.train_size.*fewer than n_samples"):
        builder(seed=0, n_samples=100, train_size=100)


def test_random_draws_a_fresh_batch_each_epoch_from_the_runs_generator() -> None:
    dataset = DATASETS.get("random")(seed=0, samples=64, n_features=10)
    generator = torch.Generator().manual_seed(5)
    first, second = dataset.resample_train(generator), dataset.resample_train(generator)
    assert first.inputs.shape == (64, 10) and first.targets.shape == (64, 1)
    assert not torch.equal(first.inputs, second.inputs) and not torch.equal(first.targets, second.targets)
    replay = torch.Generator().manual_seed(5)
    assert torch.equal(dataset.resample_train(replay).inputs, first.inputs)  # reproducible from the run's seed
    # It is torch.randn from that generator: inputs first, then targets.
    reference = torch.Generator().manual_seed(5)
    assert torch.equal(first.inputs, torch.randn(64, 10, generator=reference, dtype=torch.float64))
    assert torch.equal(first.targets, torch.randn(64, 1, generator=reference, dtype=torch.float64))


def test_random_fixed_splits_are_standard_normal_and_seeded() -> None:
    builder = DATASETS.get("random")
    dataset = builder(seed=3, eval_samples=20_000)
    for split in (dataset.dev, dataset.test):
        values = torch.cat([split.inputs.reshape(-1), split.targets.reshape(-1)])
        assert abs(values.mean().item()) < 0.01 and abs(values.std().item() - 1) < 0.01
    assert not torch.equal(dataset.dev.inputs, dataset.test.inputs)
    assert torch.equal(builder(seed=3, eval_samples=20_000).test.inputs, dataset.test.inputs)
    assert not torch.equal(builder(seed=4, eval_samples=20_000).test.inputs, dataset.test.inputs)
    # The fixed draws come from their own stream, never from the run's generator.
    run_batch = dataset.resample_train(torch.Generator().manual_seed(3))
    assert not torch.isin(run_batch.inputs, dataset.train.inputs).any()
    assert dataset.spec.task == "regression" and dataset.spec.output_dim == 1


def test_digits_split_is_stratified_fixed_and_complete() -> None:
    bunch = load_digits()
    dataset = DATASETS.get("digits")(seed=0)
    sizes = (len(dataset.train), len(dataset.dev), len(dataset.test))
    assert sizes == (1257, 180, 360)
    everything = torch.cat([dataset.train.inputs, dataset.dev.inputs, dataset.test.inputs])
    assert rows(everything) == rows(torch.from_numpy(bunch.data / 16.0))
    overall = np.bincount(bunch.target) / len(bunch.target)
    for split in (dataset.train, dataset.dev, dataset.test):
        share = np.bincount(split.targets.numpy(), minlength=10) / len(split)
        assert np.abs(share - overall).max() < 0.01
    assert torch.equal(DATASETS.get("digits")(seed=99).test.inputs, dataset.test.inputs)  # the run seed is not used
    assert dataset.spec.input_shape == (64,) and dataset.spec.output_dim == 10 and dataset.spec.task == "classification"


def test_digits_scale_divides_the_pixels() -> None:
    raw = DATASETS.get("digits")(seed=0, scale=1.0)
    scaled = DATASETS.get("digits")(seed=0, scale=3.137)
    assert raw.train.inputs.max() == 16.0
    torch.testing.assert_close(scaled.train.inputs, raw.train.inputs / 3.137)
    assert torch.equal(scaled.train.targets, raw.train.targets)


def test_fractions_must_leave_training_rows() -> None:
    with pytest.raises(ConfigError, match="data.dev_fraction"):
        DATASETS.get("digits")(seed=0, dev_fraction=0.5, test_fraction=0.5)


def test_classification_is_make_classification() -> None:
    dataset = DATASETS.get("classification")(seed=0, n_classes=8, random_state=0)
    inputs, labels = make_classification(n_samples=1000, n_features=10, n_informative=5, n_redundant=2,
                                         n_classes=8, random_state=0)
    everything = torch.cat([dataset.train.inputs, dataset.dev.inputs, dataset.test.inputs])
    assert rows(everything) == rows(torch.from_numpy(inputs))
    assert (len(dataset.train), len(dataset.dev), len(dataset.test)) == (600, 200, 200)
    assert sorted(torch.cat([dataset.train.targets, dataset.dev.targets, dataset.test.targets]).tolist()) == \
        sorted(labels.tolist())
    assert dataset.spec.input_shape == (10,) and dataset.spec.output_dim == 8


@pytest.mark.parametrize("settings, message", [
    ({"n_features": 4, "n_informative": 5}, "at most n_features"),
    ({"n_classes": 8, "n_informative": 3}, "need at least 4 informative"),
])
def test_classification_rejects_impossible_settings(settings, message) -> None:
    with pytest.raises(ConfigError, match=message):
        DATASETS.get("classification")(seed=0, **settings)
