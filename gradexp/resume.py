"""Resume points: the file (last.pt) from which an interrupted or crashed run continues exactly.

A resume point holds everything the next step depends on: the model, optimizer, schedule and
clipper states, the random states (torch's global generator, CUDA's, numpy's, and the runner's
shuffle generator as it was when the current epoch began), the step, the epoch and how many of its
batches are done, the best dev result so far with its weights and the early-stopping count, and
the byte size of metrics.csv and eval.csv at that moment.

The runner writes one at the first flush of metrics.csv at least `train.resume_point_seconds` after
the previous one (or after the start: a run shorter than that writes none unless it is stopped), and at
every stop (rows first, then the resume point, each fsynced; the resume
point to a temporary file renamed over the old one), so the rows on disk always reach the resume
point's step. A resume cuts both CSV files back to the recorded sizes:
rows written after the resume point, before a crash, are dropped and then written again, identically.
A run killed before its first resume point resumes by training again from the start in its folder, from
its config.yaml; the result is the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from gradexp.errors import DataError
from gradexp.recording.layout import CONFIG, METRICS, RESUME_POINT, SUMMARY
from gradexp.recording.summary import RunSummary

# Bumped whenever the stored keys change, so an old file is refused rather than misread.
FORMAT = 2
FINISHED = ("completed", "diverged")


def random_states(device: torch.device) -> dict[str, Any]:
    """The global random states a step may draw from (the shuffle generator is stored by the runner)."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
        # As plain numbers: torch.load(weights_only=True) reads no numpy arrays.
        "numpy": {**numpy_state, "state": {"key": numpy_state["state"]["key"].tolist(),
                                           "pos": numpy_state["state"]["pos"]}},
    }


def restore_random_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and torch.cuda.device_count() == len(states["cuda"]):
        torch.cuda.set_rng_state_all(states["cuda"])
    numpy_state = states["numpy"]
    np.random.set_state({**numpy_state, "state": {"key": np.asarray(numpy_state["state"]["key"], dtype=np.uint32),
                                                  "pos": numpy_state["state"]["pos"]}})


def read_resume_point(run_dir: Path) -> Optional[dict[str, Any]]:
    """Load `run_dir`/last.pt; None for a run folder that stopped before its first resume point (it resumes by
    training again from the start); or say in one line why this folder cannot be resumed."""
    if not run_dir.is_dir():
        raise DataError(str(run_dir), "no such run folder")
    path = run_dir / RESUME_POINT
    if not path.exists():
        status = _finished_status(run_dir)
        if status is not None:
            raise DataError(str(run_dir), f"this run has already {status} (see summary.json); nothing to resume")
        if (run_dir / CONFIG).is_file() and (run_dir / METRICS).is_file():
            return None
        raise DataError(str(run_dir), f"holds no {RESUME_POINT}: not a gradexp run folder, or the run stopped "
                                      f"before it started training")
    try:
        point = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as failure:  # noqa: BLE001  (any unreadable file is the same user-facing problem)
        raise DataError(str(path), f"cannot be read as a gradexp resume point ({_first_line(failure)})") from None
    if not isinstance(point, dict) or point.get("format") != FORMAT:
        raise DataError(str(path), f"is not a gradexp resume point of format {FORMAT}")
    return point


def _finished_status(run_dir: Path) -> str | None:
    try:
        status = RunSummary.read(run_dir / SUMMARY).status
    except DataError:
        return None
    return status if status in FINISHED else None


def _first_line(failure: Exception) -> str:
    text = str(failure).strip()
    return text.splitlines()[0] if text else type(failure).__name__
