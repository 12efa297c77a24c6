"""Checkpoint files (best.pt, last.pt): a state dict saved with torch.save, written atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from gradexp.recording.files import write_bytes


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())
