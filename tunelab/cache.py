"""Artefacts that tunelab computes once and reuses: weights it pretrains itself, frozen-backbone features.

They live under ``TUNELAB_CACHE`` (default ``~/.cache/tunelab``), outside the data root, which may be
read-only. A file lock makes trials that start together wait for the first one to compute an artefact
instead of computing it again; a half-written file never replaces a good one. Pretrained weights are
named by what makes them (``pretrained``): the model's config and its training data.
"""

import fcntl
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from tunelab.files import writable

if TYPE_CHECKING:  # tunelab.data caches decoded images here, so it is not imported at run time
    from tunelab.data import Data


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tunelab"
    return Path(os.environ.get("TUNELAB_CACHE") or default)


def cached(name: str, compute: Callable[[], dict]) -> dict:
    """The dict of tensors saved as ``<cache>/<name>.pt``, computed by ``compute()`` the first time."""
    path = cache_dir() / f"{name}.pt"
    writable(path.parent, "cache folder (TUNELAB_CACHE)")
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            partial = path.with_suffix(".partial")
            torch.save(compute(), partial)
            os.replace(partial, path)
    return torch.load(path, weights_only=True)


def pretrained(name: str, config: dict, data: "Data", compute: Callable[[], dict]) -> dict:
    """Weights (a dict of tensors) pretrained by ``compute()`` with ``config`` on ``data.splits["train"]``, cached as
    ``<name>-<hash>``: the hash covers the config and the training split's content (images or texts and labels), so
    another config or other data trains again, and the same ones reuse the file."""
    return cached(f"{name}-{_digest(config, data)}", compute)


def _digest(config: dict, data: "Data") -> str:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for part in data.splits["train"]:
        array = part.cpu().numpy() if isinstance(part, torch.Tensor) else np.asarray(part)
        digest.update(f"{array.dtype}{array.shape}".encode())
        if array.dtype == object:  # texts: their characters, not the addresses of the str objects
            digest.update("\0".join(map(str, array.ravel())).encode())
        else:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]
