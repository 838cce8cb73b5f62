"""Calibration of a planned search, and the plan applied to a run: how long an epoch of the space's cheapest and
costliest configs takes on the search's data on this machine (tunelab.plan turns that into a plan). Imports torch
and the trainable, never Ray.

The corners are found among a handful of configs drawn at random from the space (and its baseline): each is built
on a slice of the data and one training step of a few examples is counted in FLOPs (torch's FlopCounterMode);
the fewest and the most FLOPs per example are the cheap and the costly corner. Each corner then trains on a slice
of the training set and evaluates a slice of the validation set, timed and scaled per example to the whole sets,
with torch's threads as a trial has them. A trial's expected epoch is the drawn configs' mean, each interpolated
between the two corners' times by its FLOPs.
"""

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from torch.utils.flop_counter import FlopCounterMode

from tunelab import data as datasets, protocol, training
from tunelab.plan import TRIAL_START_S, Plan, make_plan
from tunelab.runs import Run
from tunelab.spaces import Spec

CANDIDATES = 12  # configs drawn from the space to find its corners (fewer for a budget under 10 minutes)
COUNTED = 16  # examples of the training step whose FLOPs are counted
SLICE = 2048  # training examples the drawn configs are built on (an image model's input statistics, a vocabulary)


@dataclass(frozen=True)
class Calibration:
    """An epoch (training and validation) on the whole training set, in seconds, of the cheap and the costly corner
    and of an expected trial; a trial's start (building its model); and what calibration took."""

    epoch_s_cheap: float
    epoch_s_costly: float
    epoch_s_mean: float
    overhead_s: float
    seconds: float


def slots(spec: Spec) -> int:
    """How many trials fit on this machine at once: its CPUs over a trial's, and its GPUs over a trial's where a
    trial takes some (the local count, also for a search on a cluster)."""
    fit = (os.cpu_count() or 1) // max(spec.cpus, 1e-9)
    if spec.gpus:
        fit = min(fit, torch.cuda.device_count() // spec.gpus)
    return max(1, int(fit))


def calibrate(spec: Spec, data_dir: Path, budget_s: float) -> Calibration:
    """Time the space's corners on the search's data (see the module). Each timing aims at ~0.5 % of the budget,
    between 0.25 and 2 seconds, and a budget under 10 minutes draws fewer configs (down to 4), so that calibration
    is a small share of any budget."""
    started = time.perf_counter()
    aim = min(max(0.005 * budget_s, 0.25), 2.0)
    candidates = min(max(int(budget_s / 50), 4), CANDIDATES)
    trainable = protocol.load(spec.trainable)
    data = datasets.load(spec.dataset, data_dir, "search", 1.0, training.device())
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, math.floor(spec.cpus)))  # as a trial has them
    try:
        counted = sorted(((_flops(trainable, spec, config, data), i, config) for i, config in
                          enumerate(_candidates(spec, candidates))), key=lambda c: c[:2])  # fmt: skip
        (low, _, cheap), (high, _, costly) = counted[0], counted[-1]
        (cheap_s, build_s), (costly_s, costly_build_s) = (_epoch_s(trainable, c, data, aim) for c in (cheap, costly))
    finally:
        torch.set_num_threads(threads)
    mean_flops = sum(c[0] for c in counted) / len(counted)
    share = (mean_flops - low) / (high - low) if high > low else 0.5
    return Calibration(cheap_s, costly_s, cheap_s + share * (costly_s - cheap_s),
                       TRIAL_START_S + max(build_s, costly_build_s), time.perf_counter() - started)  # fmt: skip


def _candidates(spec: Spec, n: int) -> list[dict]:
    """Complete configs: the baseline (if any) and ``n`` drawn at random from the space."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    drawn = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=spec.seed))
    sampled = [drawn.ask(spec.params).params for _ in range(n if spec.params else 1)]
    return [spec.config(values) for values in ([spec.baseline] if spec.baseline else []) + sampled]


def _sliced(data: datasets.Data, n: int) -> datasets.Data:
    """``data`` with its first ``n`` training and validation examples."""
    return dataclasses.replace(data, splits={k: tuple(v[:n] for v in data.splits[k]) for k in ("train", "val")})


def _flops(trainable: protocol.Trainable, spec: Spec, config: dict, data: datasets.Data) -> float:
    """FLOPs per example of a training step of ``config``."""
    parts = training.build(trainable, config, _sliced(data, SLICE), spec.seed)
    with FlopCounterMode(display=False) as counter:
        trainable.train_epoch(parts, _sliced(data, COUNTED), config)
    return counter.get_total_flops() / COUNTED


def _epoch_s(trainable: protocol.Trainable, config: dict, data: datasets.Data, aim: float) -> tuple[float, float]:
    """Seconds of an epoch of ``config`` (training and validation) on the whole sets, and of building it."""
    start = time.perf_counter()
    parts = training.build(trainable, config, data, 0)
    build_s = time.perf_counter() - start
    per_example = {}
    for split, run in (("train", lambda d: trainable.train_epoch(parts, d, config)),
                       ("val", lambda d: trainable.evaluate(parts, d, "val"))):  # fmt: skip
        total = len(data.splits[split][1])
        n = min(total, config.get("batch_size", 64))  # one batch warms up and says how many to time
        seconds = _timed(run, _sliced(data, n))
        more = min(total, int(aim * n / max(seconds, 1e-6)))
        if more > n:  # else the warm-up, a little slow, is the timing: a costly config on a small budget
            n, seconds = more, _timed(run, _sliced(data, more))
        per_example[split] = seconds / n * total
    return per_example["train"] + per_example["val"], build_s


def _timed(run, data: datasets.Data) -> float:
    start = time.perf_counter()
    run(data)
    if data.device.type == "cuda":
        torch.cuda.synchronize(data.device)
    return time.perf_counter() - start


def plan_for(spec: Spec, data_dir: Path, fixed: dict) -> Plan:
    """The plan of a search of ``spec`` (with the command line's options applied) within its time budget;
    ``fixed``: the user's flags that the plan keeps (tunelab.plan.FLAGS' keys). A grid keeps its size."""
    if spec.method == "grid":
        fixed = {"trials": spec.run_cap} | fixed
    found = calibrate(spec, data_dir, spec.time_budget_s)
    return make_plan(spec.time_budget_s, found.epoch_s_cheap, found.epoch_s_costly, found.overhead_s, slots(spec),
                     fixed, spec.max_epochs, calibration_s=found.seconds, epoch_s_mean=found.epoch_s_mean)  # fmt: skip


def apply(run: Run, plan: Plan) -> Run:
    """``run`` searching as planned: its trials, epochs, rungs, data fraction and concurrency, and Ray's budget the
    user's less what calibration took."""
    hyperband = {"min_iter": plan.rungs[0], "eta": plan.eta} if plan.rungs else None
    spec = dataclasses.replace(run.spec, run_cap=plan.trials, max_epochs=plan.max_epochs, hyperband=hyperband,
                               time_budget_s=plan.hard_stop_s(plan.calibration_s))  # fmt: skip
    options = dataclasses.replace(run.options, subset=plan.subset, concurrency=plan.concurrency)
    return dataclasses.replace(run, spec=spec, options=options, plan=plan)
