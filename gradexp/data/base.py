"""What every dataset builder returns: tensors per split and a spec the model builders read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional

import torch


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about the data to size itself."""

    task: Literal["classification", "regression"]
    # Shape of one example's input: (sequence length,) for token sequences, (features,) for vectors.
    input_shape: tuple[int, ...]
    # Classes for classification, target width for regression.
    output_dim: int
    # Number of distinct tokens when inputs are token ids, else None.
    vocab_size: Optional[int] = None


@dataclass
class Split:
    inputs: torch.Tensor
    targets: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.inputs)

    def to(self, device: torch.device, float_dtype: torch.dtype) -> "Split":
        def move(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.to(device, float_dtype if tensor.is_floating_point() else tensor.dtype)

        return Split(move(self.inputs), move(self.targets))


@dataclass
class Dataset:
    spec: DataSpec
    train: Split
    dev: Optional[Split]
    test: Optional[Split]
    # For data drawn afresh every epoch (E3): called with the run's data generator at each epoch start.
    resample_train: Optional[Callable[[torch.Generator], Split]] = None
