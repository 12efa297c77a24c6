"""Build every component a config names, before anything is written: a bad config fails here."""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from gradexp.clipping import CLIP_MODES
from gradexp.clipping.base import GradientClipper
from gradexp.config.schema import ExperimentConfig
from gradexp.data import DATASETS
from gradexp.data.base import Dataset
from gradexp.errors import ConfigError, DataError
from gradexp.evaluation import TASK_METRICS, Metric
from gradexp.losses import LOSSES
from gradexp.models import MODELS
from gradexp.models.base import TimeGradients
from gradexp.optim import OPTIMIZERS
from gradexp.schedules import SCHEDULES, LearningRateSchedule
from gradexp.threads import torch_threads

FLOAT_TYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Experiment:
    config: ExperimentConfig
    device: torch.device
    dtype: torch.dtype
    dataset: Dataset
    model: nn.Module  # a registered model, so also a gradexp.models.base.Model
    parameter_names: list[str]
    train_loss: nn.Module
    mean_loss: nn.Module
    metric: Metric
    optimizer: torch.optim.Optimizer
    schedule: LearningRateSchedule
    clipper: GradientClipper
    # Where the model's backward leaves ‖∂L/∂h_t‖ (record.time_grads, recurrent models); None when not recorded.
    time_gradients: Optional[TimeGradients] = None

    @property
    def parameters(self) -> list[nn.Parameter]:
        return [parameter for _, parameter in self.model.named_parameters()]

    @property
    def sigma_parameters(self) -> list[str]:
        """The recurrent matrices whose largest singular value the run records (record.sigma_max)."""
        return list(self.model.recurrent_parameters) if self.config.record.sigma_max else []

    @property
    def depth_layers(self) -> list[str]:
        """The first and the last layer of a feed-forward stack, whose gradient norms' ratio the run records
        (record.depth_ratio; none without the norms it is computed from)."""
        layers = list(self.model.layer_parameters)
        recorded = self.config.record.depth_ratio and self.config.record.norms and len(layers) >= 2
        return [layers[0], layers[-1]] if recorded else []

    @property
    def plot_parameters(self) -> list[str]:
        """The parameters the run's figures show and its summary lists: plot.params, else the model's choice
        (W, U, b for the SRN; every model declares one, see models.base.Model)."""
        return list(self.config.plot.params or self.model.default_plot_parameters)


def resolve_device(name: str, source: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(source, "train.device", "cuda was asked for but this machine has no CUDA device "
                                                  "(or torch was installed without CUDA); use cpu or auto")
    return torch.device(name)


class DatasetCache:
    """The datasets built last in this process, by data section and seed, so that the points of a sweep that
    share their data build it (generate it, or read its files) once.

    Training never changes a dataset (a run moves its splits to its device and dtype as copies, and data
    drawn afresh each epoch comes from the run's own generator), so runs can share one. It keeps the
    `capacity` most recently used: a sweep's points vary their seed fastest, so a capacity of its seed
    count reuses every dataset while holding few large ones.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._datasets: OrderedDict[str, Dataset] = OrderedDict()

    def dataset(self, config: ExperimentConfig) -> Dataset:
        key = json.dumps([config.data.name, config.data.params, config.train.seed], sort_keys=True, default=str)
        if key in self._datasets:
            self._datasets.move_to_end(key)
        else:
            self._datasets[key] = _build_dataset(config)
            while len(self._datasets) > self.capacity:
                self._datasets.popitem(last=False)
        return self._datasets[key]


def build_experiment(config: ExperimentConfig, datasets: Optional[DatasetCache] = None) -> Experiment:
    """Data, model, losses, optimizer and clipper for `config`, seeded from train.seed; the data from `datasets`
    when given (built there once for the configs that share it). Built on train.threads torch threads, as
    the run trains: generating data computes, and `validate` builds too."""
    try:
        with torch_threads(config.train.threads):
            return _build(config, datasets)
    except ConfigError as failure:
        raise failure.with_source(config.source) from None


def build_dataset(config: ExperimentConfig) -> Dataset:
    """The config's dataset alone (no model), as a run builds it; errors name the config file."""
    try:
        with torch_threads(config.train.threads):
            return _build_dataset(config)
    except ConfigError as failure:
        raise failure.with_source(config.source) from None


def _build_dataset(config: ExperimentConfig) -> Dataset:
    """The dataset; a file it cannot read is reported against the config key that named it (data.path)."""
    try:
        return DATASETS.get(config.data.name)(config.train.seed, **config.data.params)
    except DataError as failure:
        raise ConfigError(config.source, _data_key(config.data.params, failure.path), str(failure)) from None


def _data_key(params: dict[str, Any], failing_path: str) -> str:
    """The data key whose path holds `failing_path` (the folder itself or a file in it), else the section."""
    for key, value in params.items():
        if isinstance(value, str) and Path(failing_path).is_relative_to(Path(value).expanduser()):
            return f"data.{key}"
    return "data"


def _build(config: ExperimentConfig, datasets: Optional[DatasetCache]) -> Experiment:
    train = config.train
    device = resolve_device(train.device, config.source)
    dtype = FLOAT_TYPES[train.dtype]
    dataset = datasets.dataset(config) if datasets is not None else _build_dataset(config)
    if train.batch_size > len(dataset.train):
        raise ConfigError(config.source, "train.batch_size",
                          f"expected at most the training set's size {len(dataset.train)}, got {train.batch_size}")
    torch.manual_seed(train.seed if train.init_seed is None else train.init_seed)
    model = MODELS.get(config.model.name)(dataset.spec, **config.model.params).to(device=device, dtype=dtype)
    loss_builder = LOSSES.get(config.loss.name)
    loss_params = {key: value for key, value in config.loss.params.items() if key != "reduction"}
    metric = TASK_METRICS[dataset.spec.task]
    optimizer = OPTIMIZERS.get(config.optimizer.name)(model.parameters(), **config.optimizer.params)
    clipper = CLIP_MODES.get(config.clip.name)(model, **config.clip.params)
    recording_time = config.record.time_grads and bool(model.recurrent_parameters)
    return Experiment(
        config=config,
        device=device,
        dtype=dtype,
        dataset=dataset,
        model=model,
        parameter_names=[name for name, _ in model.named_parameters()],
        train_loss=loss_builder(**config.loss.params),
        mean_loss=loss_builder(**loss_params, reduction="mean"),
        metric=metric,
        optimizer=optimizer,
        schedule=SCHEDULES.get(config.schedule.name)(optimizer, metric, **config.schedule.params),
        clipper=clipper,
        time_gradients=model.record_time_gradients() if recording_time else None,
    )
