"""Artefacts that tunelab computes once and reuses: weights it pretrains itself, frozen-backbone features.

They live under ``TUNELAB_CACHE`` (default ``~/.cache/tunelab``), outside the data root, which may be
read-only. A file lock makes trials that start together wait for the first one to compute an artefact
instead of computing it again; a half-written file never replaces a good one.
"""

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

import torch


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tunelab"
    return Path(os.environ.get("TUNELAB_CACHE") or default)


def cached(name: str, compute: Callable[[], dict]) -> dict:
    """The dict of tensors saved as ``<cache>/<name>.pt``, computed by ``compute()`` the first time."""
    path = cache_dir() / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            partial = path.with_suffix(".partial")
            torch.save(compute(), partial)
            os.replace(partial, path)
    return torch.load(path, weights_only=True)
