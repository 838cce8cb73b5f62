"""Running a search on a Ray cluster: which cluster, where its results live, how the code reaches the nodes.

- The cluster: ``--address`` or ``RAY_ADDRESS``; neither means a local Ray started for the search (never
  another Ray instance that runs on the same machine).
- The storage: Ray keeps a run's trials, checkpoints and state under ``--storage/<run>``, a shared file
  system or a bucket (``s3://...``, ``gs://...``) that the driver and every node can reach; by default
  the run's own results folder, which only the driver's machine sees.
- The code: the driver's copies of ``tunelab`` and ``trainables`` travel to the nodes in Ray's runtime
  environment, so every node runs exactly the driver's code (the nodes' install provides the libraries).
- The checkpoints: Ray's saved state of a search (which it resumes from after the driver dies) lags the
  trials by up to a second, so a trial's older checkpoints must outlive it: Ray deleting them as soon as a
  newer one arrives (``num_to_keep``) can leave the state pointing at a deleted checkpoint, and the trial
  then fails on resume. Ray keeps them all while the search runs; the older ones are deleted when it ends.
- The data: on a cluster the driver reads the data set and ships it through Ray's object store, so the
  worker nodes need no copy of their own.
"""

import logging
import math
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pyarrow.fs
import ray
from ray.tune import ResultGrid

from tunelab import UserError

PACKAGES = ("tunelab", "trainables")  # what the nodes import from the driver's copy
STATE_PERIOD_S = 1  # how often Ray saves the search's state to the storage (its default: every 10 s or more)


def address(cli_value: str | None) -> str | None:
    """The cluster to run on: ``--address``, else ``RAY_ADDRESS``, else None (a local Ray)."""
    return cli_value or os.environ.get("RAY_ADDRESS") or None


def storage(cli_value: str | None) -> str | None:
    """``--storage`` as Ray takes it: a URI unchanged, a local path made absolute."""
    if not cli_value or "://" in cli_value:
        return cli_value
    return str(Path(cli_value).expanduser().resolve())


def runtime_env() -> dict:
    """Ray's runtime environment for a search on a cluster: the driver's tunelab and trainables."""
    root = Path(__file__).resolve().parents[1]
    return {"py_modules": [str(root / p) for p in PACKAGES], "excludes": ["__pycache__", "*.pyc"]}


def init(address: str | None) -> None:
    """Start a local Ray (no address) or connect to the cluster at ``address``, shipping the code."""
    # Our Progress callback is the live output: Ray's own tables and checkpoint-frequency warnings are off.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "10")  # W&B's per-result logging takes ~1 s on a busy 2-core CPU
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(STATE_PERIOD_S))
    # "local": a Ray of the search's own, never another Ray instance that happens to run on this machine
    where = {"address": "local", "include_dashboard": False} if address is None else {"address": address, "runtime_env": runtime_env()}
    try:
        if address is not None:
            check_reachable(address)
        ray.init(**where, log_to_driver=False, logging_level=logging.WARNING, configure_logging=True)
    except (ConnectionError, TimeoutError, OSError) as e:
        raise UserError(f"cannot reach the Ray cluster at {address!r} (--address or RAY_ADDRESS): {e}; "
                        "is it up? (`ray status` on its head node)") from None  # fmt: skip


@contextmanager
def connected(address: str | None, cpus: float, gpus: float) -> Iterator[int]:
    """Ray started or joined for one search whose trials each take ``cpus`` and ``gpus``; yields how many such
    trials fit on the cluster at once. A request that no node can serve is refused before anything starts."""
    init(address)
    try:
        yield check_resources(cpus, gpus)
    finally:
        ray.shutdown()


def check_resources(cpus: float, gpus: float) -> int:
    """How many trials of ``cpus`` and ``gpus`` fit on the live nodes at once; none is a clear error."""
    wanted = {"CPU": cpus, "GPU": gpus}
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    slots = sum(min(math.floor(node.get(k, 0) / v) for k, v in wanted.items() if v > 0) for node in nodes)
    if slots == 0:
        have = "; ".join(f"{node.get('CPU', 0):g} CPUs, {node.get('GPU', 0):g} GPUs" for node in nodes)
        raise UserError(f"a trial asks for {cpus:g} CPUs and {gpus:g} GPUs (--cpus-per-trial, --gpus-per-trial), "
                        f"but no node has that much: {have}")  # fmt: skip
    return slots


def check_reachable(address: str, timeout_s: float = 5) -> None:
    """Fail fast on a HOST:PORT that does not answer (Ray itself retries for minutes); "auto" is Ray's to find."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if sep and port.isdigit():
        socket.create_connection((host, int(port)), timeout=timeout_s).close()


def keep_latest_checkpoints(results: ResultGrid) -> None:
    """Delete every checkpoint of a finished or interrupted search but each trial's latest as Ray's saved state
    names it, which resume restores. A trial stopped as the search ended may have written a newer one that Ray
    never registered: that one goes too (keeping it instead left resume pointing at a deleted checkpoint)."""
    for result in results:
        keep = result.checkpoint.path if result.checkpoint else None
        for info in result.filesystem.get_file_info(pyarrow.fs.FileSelector(result.path, allow_not_found=True)):
            if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith("checkpoint_") and info.path != keep:
                result.filesystem.delete_dir(info.path)
