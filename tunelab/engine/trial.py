"""One Ray Tune trial: the only place that calls Ray's report and checkpoint API.

It completes the sampled values into the trial's config (``Spec.config``), runs the epochs, and reports metrics
and a checkpoint after each, with the trial's best epoch so far (tunelab.spec.rules); a restarted trial continues from
its latest checkpoint. Trials reuse their worker process (Ray's
``reuse_actors``): the data set stays loaded on the trial's device for the next trial that reads it, and
nothing else carries over: each trial seeds the random streams and sets torch's threads anew.
"""

import gc
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from tunelab import data as datasets
from tunelab.spec.rules import is_new_best
from tunelab.spec.spaces import Spec
from tunelab.trainable import protocol, training

STATE_FILE = "state.pt"


@dataclass(frozen=True)
class TrialJob:
    """What every trial of a search shares (travels to the workers through Ray's object store)."""

    spec: Spec
    data_dir: str
    subset: float
    threads: int


_loaded: dict[tuple, datasets.Data] = {}  # the worker's data set, by what it was loaded as


def _data(job: TrialJob, shipped: dict | None) -> datasets.Data:
    """The trial's data on its device: loaded by the worker's first trial of that data set and subset. ``shipped``:
    every data set the search reads (its own and the trainable's extra ones), by name, from a cluster's driver."""
    if shipped:
        datasets.use_shipped(shipped)  # also what the trainable loads itself (e.g. MNIST to pretrain on)
    key = (job.spec.dataset, job.data_dir, job.subset, str(training.device()))
    if key not in _loaded:
        _loaded.clear()  # one data set per worker: another's tensors are freed first
        _loaded[key] = datasets.load_dataset(
            job.spec.dataset, Path(job.data_dir), "search", job.subset, training.device()
        )
    return _loaded[key]


def _clean_start(job: TrialJob) -> None:
    """What a previous trial in this worker may have changed: threads, its models' memory on the GPU and its peak."""
    torch.set_num_threads(job.threads)
    gc.collect()  # the previous trial's objects
    gc.freeze()  # the survivors (imports, loaded data) are not scanned again: a full collection of them takes 0.3 s
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_trial(sampled: dict, job: TrialJob, shipped: dict | None = None) -> None:
    """``shipped``: the data sets' arrays by name from the driver (on a cluster), else the trial reads the data root."""
    _clean_start(job)
    spec = job.spec
    config = spec.config(sampled)
    trainable = protocol.load_trainable(spec.trainable)
    data = _data(job, shipped)
    parts = training.build(trainable, config, data, spec.seed)
    params = training.param_count(parts)
    node = ray.get_runtime_context().get_node_id()  # where each epoch ran: a trial moves when its node fails
    worker = os.getpid()  # and in which worker process (reused by later trials)
    examples = len(data.splits["val"][1])  # what each val_ metric is over (tunelab.store.leaderboard's intervals)
    start, best, best_epoch, duration = 0, None, 0, 0.0

    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            saved = torch.load(Path(d) / STATE_FILE, map_location=data.device, weights_only=True)
        training.restore(parts, saved["parts"])
        start, best, best_epoch, duration = saved["epoch"], saved["best"], saved["best_epoch"], saved["duration_s"]

    for epoch in range(start + 1, config["epochs"] + 1):
        metrics: dict[str, Any] = training.epoch(trainable, parts, data, config, "val")  # and below, the node's id
        value = metrics.get(spec.metric)
        if is_new_best(spec, value, best):
            best, best_epoch = value, epoch
        duration += metrics["epoch_s"]  # seconds of epochs so far (with validation; without start-up, data loading)
        metrics |= {
            "epoch": epoch,
            "best_epoch": best_epoch,
            "params": params,
            "duration_s": duration,
            "node_id": node,
            "worker_pid": worker,
            "val_examples": examples,
        }
        if data.device.type == "cuda":  # what packing trials on one GPU must fit
            metrics["gpu_mem_peak_mb"] = torch.cuda.max_memory_allocated(data.device) / 2**20
        with tempfile.TemporaryDirectory() as d:
            state = {"parts": training.state(parts), "epoch": epoch, "best": best, "best_epoch": best_epoch,
                     "duration_s": duration}  # fmt: skip
            torch.save(state, Path(d) / STATE_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
