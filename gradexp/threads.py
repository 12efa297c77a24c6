"""How many CPU threads torch computes with: one place, so every command that computes sets it alike."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Torch uses `threads` CPU threads inside the block (train.threads), and its previous count after.

    One thread is the default everywhere: torch's own default of one thread per core makes the small
    products of these models 30-100x slower on a busy 2-core machine, and MKL splits some products
    differently by thread count, so a fixed count also keeps results reproducible.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the platform tells), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
