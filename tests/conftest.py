"""Shared fixtures: tiny configs written to tmp_path, so CLI and runner tests take seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

TINY_SRN: dict[str, Any] = {
    "data": {"name": "digit_sum", "length": 5},
    "model": {"name": "srn", "input_size": 8, "hidden_size": 8},
    "optimizer": {"name": "sgd", "lr": 0.05},
    "loss": {"name": "cross_entropy", "reduction": "mean"},
    "clip": {"mode": "none"},
    "train": {"epochs": 2, "batch_size": 64, "eval_every": 4, "seed": 0, "shuffle": True, "flush_every": 3},
}


def train_tiny(root: Path, name: str, config: dict[str, Any], reporter: Any = None) -> Any:
    """`config` written to root/NAME.yaml and trained into a run folder under root/runs/; the RunResult."""
    from gradexp.config.loading import load_config
    from gradexp.runner import run

    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return run(load_config(path), root / "runs", reporter)


def merged(base: dict[str, Any], changes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    result = {section: dict(body) for section, body in base.items()}
    for section, body in changes.items():
        result.setdefault(section, {}).update(body)
    return result


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """write_config(name="tiny", **section_changes) -> path of a YAML file derived from TINY_SRN."""

    def write(name: str = "tiny", base: dict[str, Any] | None = None, **changes: dict[str, Any]) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(merged(base or TINY_SRN, changes), sort_keys=False))
        return path

    return write
