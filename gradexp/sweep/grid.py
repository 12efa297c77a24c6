"""A sweep's grid: `--grid section.key=v1,v2,...` axes, their cartesian product, and one config per point.

Each value is read and applied exactly as `--set section.key=value` is (YAML, so 0.1 is a number and
`none` is null; `clip.threshold=none` means "no clipping", see config.loading.apply_overrides), so a
point with clip.threshold=none runs with `clip.mode: none` whatever mode the other points clip with.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from gradexp.config.loading import apply_overrides, config_from_dict, parse_override
from gradexp.config.schema import SECTION_NAMES, ExperimentConfig
from gradexp.errors import ConfigError

SEED_KEY = "train.seed"


@dataclass(frozen=True)
class GridAxis:
    """One `--grid` option: a dotted config key and the values it takes, as typed and as parsed."""

    key: str
    texts: tuple[str, ...]
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Assignment:
    key: str
    text: str
    value: Any


@dataclass(frozen=True)
class SweepPoint:
    """One run of the sweep: a value for every axis (train.seed apart), and a seed."""

    index: int
    assignments: tuple[Assignment, ...]
    seed: int

    @property
    def name(self) -> str:
        """The run's name (its folder's prefix): index, each axis's last key part and value, the seed.

        E.g. 003-lr0.1-threshold5-seed0.
        """
        parts = [f"{self.index:03d}"] + [f"{a.key.split('.')[-1]}{_safe(a.text)}" for a in self.assignments]
        return "-".join(parts + [f"seed{self.seed}"])

    @property
    def overrides(self) -> list[str]:
        return [f"{a.key}={a.text}" for a in self.assignments] + [f"{SEED_KEY}={self.seed}"]

    def value(self, key: str) -> Any:
        """The point's value for a grid key (train.seed included)."""
        if key == SEED_KEY:
            return self.seed
        return next(a.value for a in self.assignments if a.key == key)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_") or "_"


def parse_axis(text: str, source: str) -> GridAxis:
    """`section.key=v1,v2,...` -> GridAxis; the key and every value are checked as `--set` checks them."""
    key, separator, listed = text.partition("=")
    texts = tuple(part.strip() for part in listed.split(","))
    if not separator or not listed.strip() or not all(texts) or key.strip().count(".") != 1:
        raise ConfigError(source, f"--grid {text}", "expected section.key=v1,v2,... with no empty value")
    try:
        parsed = [parse_override(f"{key.strip()}={value_text}", source) for value_text in texts]
    except ConfigError as failure:
        raise ConfigError(source, f"--grid {text}", failure.message) from None
    section, name, _ = parsed[0]
    if section not in SECTION_NAMES:
        raise ConfigError(source, f"--grid {text}", f"unknown section {section!r}; expected one of "
                                                    f"{', '.join(SECTION_NAMES)}")
    key = f"{section}.{name}"
    if len(set(texts)) != len(texts):
        raise ConfigError(source, f"--grid {text}", "a value is listed twice")
    return GridAxis(key, texts, tuple(value for _, _, value in parsed))


def expand(axes: Sequence[GridAxis], seeds: int, base_seed: int, source: str) -> list[SweepPoint]:
    """The cartesian product of the axes (the last axis varying fastest), each point once per seed.

    Seeds are base_seed, base_seed + 1, ..., unless the grid itself sweeps train.seed.
    """
    keys = [axis.key for axis in axes]
    if len(set(keys)) != len(keys):
        raise ConfigError(source, "--grid", f"{next(k for k in keys if keys.count(k) > 1)} is given twice")
    seeded_by_grid = SEED_KEY in keys
    if seeded_by_grid and seeds != 1:
        raise ConfigError(source, "--seeds", f"the grid already sweeps {SEED_KEY}; leave --seeds out")
    points = []
    for combination in itertools.product(*(zip(axis.texts, axis.values) for axis in axes)):
        assignments = [Assignment(key, text, value) for key, (text, value) in zip(keys, combination)]
        grid_seeds = [a.value for a in assignments if a.key == SEED_KEY]
        for seed in grid_seeds or [base_seed + offset for offset in range(seeds)]:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ConfigError(source, f"--grid {SEED_KEY}", f"expected integers >= 0, got {seed!r}")
            kept = tuple(a for a in assignments if a.key != SEED_KEY)
            points.append(SweepPoint(len(points), kept, seed))
    return points


def point_config(raw: Mapping[str, Any], point: SweepPoint, source: str) -> ExperimentConfig:
    """The checked config of one point: the base config with the point's values applied.

    Raises ConfigError naming the key ("from --grid") when a value does not fit.
    """
    updated, overridden = apply_overrides(raw, point.overrides, source)
    try:
        return config_from_dict(updated, source=source, name=point.name, overridden=overridden)
    except ConfigError as failure:
        # config_from_dict marks every overridden key "(from --set)"; these came from the grid.
        raise ConfigError(source, failure.key.replace("(from --set)", "(from --grid)"), failure.message) from None
