"""summary.json: what a finished (or stopped) run was, as one typed record.

The runner writes it last, so a run folder without one is unfinished. Readers go through
`RunSummary.from_json`, which takes any older or partial summary (and a hand-edited one): a key
it lacks, or a value of the wrong kind, reads as missing (None, or an empty list or mapping), never
as an error. Missing is a normal value: a diverged run has no test metric (its model scores NaN,
which JSON holds as null), an interrupted one was not tested.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from gradexp.recording.files import read_mapping, write_json

Number = float | int


@dataclass(frozen=True)
class RunSummary:
    name: Optional[str] = None
    # completed, diverged or interrupted
    status: Optional[str] = None
    # SIGINT or SIGTERM for an interrupted run
    interrupted_by: Optional[str] = None
    # the step at which each resumed session began
    resumed_at_steps: list[int] = field(default_factory=list)
    diverged: bool = False
    diverged_at_step: Optional[int] = None
    # the parameter whose norm was the first non-finite one ("loss" when only the loss was)
    diverged_parameter: Optional[str] = None
    early_stopped: bool = False
    steps: Optional[int] = None
    epochs: Optional[int] = None
    seconds: Optional[float] = None
    # the task's metric: accuracy or mse
    metric: Optional[str] = None
    # {"step": n, "loss": x, <metric>: y} of the best dev evaluation; None without one
    best_dev: Optional[dict[str, Optional[Number]]] = None
    # {"loss": x, <metric>: y}; None when the run was not tested
    test: Optional[dict[str, Optional[Number]]] = None
    # last or best: which model the test evaluated
    test_model: Optional[str] = None
    # per parameter and "total", over the finite recorded steps
    max_grad_norm: dict[str, Optional[Number]] = field(default_factory=dict)
    median_grad_norm: dict[str, Optional[Number]] = field(default_factory=dict)
    max_clipped_norm: dict[str, Optional[Number]] = field(default_factory=dict)
    # the share of steps in which clipping changed the gradient
    clip_fraction: Optional[float] = None
    # a feed-forward stack's median over the steps of ‖g_first layer‖ / ‖g_last layer‖ (metrics.csv's
    # depth_ratio); None for other models
    median_depth_ratio: Optional[float] = None
    final_loss: Optional[float] = None
    parameters: list[str] = field(default_factory=list)
    plot_parameters: list[str] = field(default_factory=list)
    # the resolved clip section
    clip: dict[str, Any] = field(default_factory=dict)
    device: Optional[str] = None
    device_name: Optional[str] = None
    versions: dict[str, Any] = field(default_factory=dict)

    @property
    def best_dev_value(self) -> Optional[Number]:
        """The task metric of the best dev evaluation, or None."""
        return (self.best_dev or {}).get(self.metric) if self.metric else None

    @property
    def test_value(self) -> Optional[Number]:
        """The task metric on the test split, or None (not tested, or a diverged model's NaN)."""
        return (self.test or {}).get(self.metric) if self.metric else None

    def to_json(self) -> dict[str, Any]:
        """The JSON object, keys in field order (non-finite numbers become null when written)."""
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "RunSummary":
        """Read what a summary.json holds; wrong or missing values read as missing."""
        values = {}
        for item in dataclasses.fields(cls):
            if item.name in data:
                kept = _READERS[item.name](data[item.name])
                if kept is not None or item.default is None:
                    values[item.name] = kept
        return cls(**values)

    def write(self, path: Path) -> None:
        write_json(path, self.to_json())

    @classmethod
    def read(cls, path: Path) -> "RunSummary":
        """Load a summary.json; a file that is not one raises a one-line DataError naming it."""
        return cls.from_json(read_mapping(path, "JSON", "a gradexp summary (expected a JSON object)"))


def number(value: Any) -> Optional[Number]:
    """A JSON number, or None for anything else (missing, null, a string in a hand-edited file)."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _whole(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _flag(value: Any) -> Optional[bool]:
    return value if isinstance(value, bool) else None


def _numbers(value: Any) -> Optional[dict[str, Optional[Number]]]:
    """A mapping of names to numbers (missing where a value is not one), or None when it is not a mapping."""
    return {str(key): number(item) for key, item in value.items()} if isinstance(value, Mapping) else None


def _texts(value: Any) -> Optional[list[str]]:
    return [str(item) for item in value] if isinstance(value, list) else None


def _wholes(value: Any) -> Optional[list[int]]:
    return [item for item in value if _whole(item) is not None] if isinstance(value, list) else None


def _mapping(value: Any) -> Optional[dict[str, Any]]:
    return dict(value) if isinstance(value, Mapping) else None


_READERS = {
    "name": _text, "status": _text, "interrupted_by": _text, "resumed_at_steps": _wholes, "diverged": _flag,
    "diverged_at_step": _whole, "diverged_parameter": _text, "early_stopped": _flag, "steps": _whole,
    "epochs": _whole, "seconds": number, "metric": _text, "best_dev": _numbers, "test": _numbers,
    "test_model": _text, "max_grad_norm": _numbers, "median_grad_norm": _numbers, "max_clipped_norm": _numbers,
    "clip_fraction": number, "median_depth_ratio": number, "final_loss": number, "parameters": _texts, "plot_parameters": _texts,
    "clip": _mapping, "device": _text, "device_name": _text, "versions": _mapping,
}
