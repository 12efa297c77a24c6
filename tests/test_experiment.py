"""build_experiment with a DatasetCache: the configs that share their data section and seed share one dataset, equal
to the one built alone."""

from __future__ import annotations

import pytest
import torch

from gradexp.config.loading import load_config
from gradexp.experiment import DatasetCache, build_experiment
from tests.conftest import TINY_SRN


def test_configs_sharing_data_and_seed_share_one_dataset_equal_to_a_fresh_one(write_config) -> None:
    path = write_config()
    datasets = DatasetCache(capacity=2)
    first = build_experiment(load_config(path, ["optimizer.lr=0.1"]), datasets)
    second = build_experiment(load_config(path, ["optimizer.lr=0.5", "optimizer.momentum=0.9"]), datasets)
    alone = build_experiment(load_config(path))
    assert second.dataset is first.dataset and alone.dataset is not first.dataset
    for split in ("train", "dev", "test"):
        ours, theirs = getattr(first.dataset, split), getattr(alone.dataset, split)
        assert torch.equal(ours.inputs, theirs.inputs) and torch.equal(ours.targets, theirs.targets)
    # The model's initial weights do not depend on whether the data was built or reused.
    for ours, theirs in zip(second.model.parameters(), alone.model.parameters()):
        assert torch.equal(ours, theirs)


def test_other_seeds_or_data_get_their_own_and_the_least_recent_goes_first(write_config) -> None:
    # the seeded generator: each seed its own data (the book's loop gives every seed the same)
    path = write_config(data={**TINY_SRN["data"], "generator": "seeded"})
    datasets = DatasetCache(capacity=2)

    def dataset(*overrides: str):
        return build_experiment(load_config(path, list(overrides)), datasets).dataset

    seed0, seed1 = dataset("train.seed=0"), dataset("train.seed=1")
    assert seed1 is not seed0 and not torch.equal(seed0.train.inputs, seed1.train.inputs)
    assert dataset("train.seed=0") is seed0  # now the most recent
    longer = dataset("data.length=7")  # a third: seed 1's goes
    assert longer.train.inputs.shape != seed0.train.inputs.shape
    assert dataset("train.seed=0") is seed0 and dataset("train.seed=1") is not seed1


@pytest.mark.parametrize("threads", [1, 2])
def test_building_computes_on_the_configs_threads(write_config, monkeypatch, threads: int) -> None:
    """Data generation and initial weights are computed, by `validate` as by `run`: on train.threads, whatever
    torch's count was (two threads on two busy cores made small operations 30-100x slower)."""
    seen = []
    manual_seed = torch.manual_seed
    monkeypatch.setattr(torch, "manual_seed", lambda seed: seen.append(torch.get_num_threads()) or manual_seed(seed))
    previous = torch.get_num_threads()
    torch.set_num_threads(3 - threads)
    try:
        build_experiment(load_config(write_config(train={"threads": threads})))
        assert seen == [threads] and torch.get_num_threads() == 3 - threads
    finally:
        torch.set_num_threads(previous)


def test_init_seed_draws_the_initial_weights_and_leaves_the_data_to_the_seed(write_config) -> None:
    path = write_config(data={**TINY_SRN["data"], "generator": "seeded"})
    other_weights = build_experiment(load_config(path, ["train.seed=0", "train.init_seed=5"]))
    seed_5 = build_experiment(load_config(path, ["train.seed=5"]))
    seed_0 = build_experiment(load_config(path, ["train.seed=0"]))
    for (name, weights), reference in zip(other_weights.model.named_parameters(), seed_5.model.parameters()):
        assert torch.equal(weights, reference), name
    assert torch.equal(other_weights.dataset.train.inputs, seed_0.dataset.train.inputs)
    assert not torch.equal(other_weights.dataset.train.inputs, seed_5.dataset.train.inputs)
