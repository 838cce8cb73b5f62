"""Calibration of a planned search, and the plan applied to a run: how long an epoch of the space's cheapest and
costliest configs takes on the search's data on this machine (tunelab.spec.planner turns that into a plan). Imports
torch and the trainable, never Ray.

The corners are found among a handful of configs drawn at random from the space (and its baseline): each is built
on a slice of the data and one training step of a few examples is counted in FLOPs (torch's FlopCounterMode);
the fewest and the most FLOPs per example are the cheap and the costly corner. Each corner then trains on a slice
of the training set and evaluates a slice of the validation set, timed and scaled per example to the whole sets,
with torch's threads as a trial has them (the costly corner also with all of them, as the retrain has them, for
the retrain's estimate). A trial's expected epoch is the drawn configs' mean, each interpolated
between the two corners' times by its FLOPs; each config the search queues first (the baseline, the priors), which
trains all its epochs, is costed at its own epoch on the same line. Where FlopCounterMode cannot follow a
trainable's step (a GAN's gradient penalty calls autograd.grad), a step's seconds per example stand in for its FLOPs,
for every config alike.

A retrain budget caps the configs a search tries (``Ceiling``): an epoch's seconds are linear in FLOPs between the
corners, so the budget over the retrain's epochs is a number of FLOPs per example, and the searcher counts each
config's before it runs it (a few hundredths of a second), skipping those above.
"""

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from torch.utils.flop_counter import FlopCounterMode

from tunelab import data as datasets
from tunelab.engine import priors
from tunelab.spec.planner import MARGIN, TRIAL_START_S, Plan, make_plan
from tunelab.spec.spaces import Spec
from tunelab.store.runs import StoredRun
from tunelab.trainable import protocol, training

CANDIDATES = 12  # configs drawn from the space to find its corners (fewer for a budget under 10 minutes)
COUNTED = 8  # examples of the training step whose FLOPs are counted
SLICE = 256  # training examples a config is built on to count its FLOPs (an image model's statistics, a vocabulary)
# the most a retrain's threads are taken to speed an epoch up, per thread: a short timing can show perfect scaling
# (2.0x on 2 cores) where the retrain ran 1.8x, and overran its budget by that much
PARALLEL_EFFICIENCY = 0.9


@dataclass(frozen=True)
class Calibration:
    """An epoch (training and validation) on the whole training set, in seconds, of the cheap and the costly corner
    and of an expected trial; a trial's start (building its model); and what calibration took."""

    epoch_s_cheap: float
    epoch_s_costly: float
    epoch_s_mean: float
    overhead_s: float
    seconds: float
    flops: tuple[float, ...] = ()  # per example, of each drawn config, fewest first: the corners are the ends
    unit: str = "flops"  # what ``flops`` counts: FLOPs, or "s" where they cannot be counted (see ``_cost``)
    queued: tuple[float, ...] = ()  # per example, as ``flops``, of each config ``calibrate`` was given as queued
    # a trial's epoch (the training set, a trial's threads) over the retrain's (train+validation, every thread): the
    # costly corner's speedup at every thread, over the share of the retrain's data that the training set is
    retrain_speedup: float = 1.0

    def epoch_s_at(self, flops: float) -> float:
        """The epoch of a config of ``flops``, on the line through the corners."""
        low, high = self.flops[0], self.flops[-1]
        share = (flops - low) / (high - low) if high > low else 0.5
        return self.epoch_s_cheap + share * (self.epoch_s_costly - self.epoch_s_cheap)

    def flops_at(self, epoch_s: float) -> float:
        """The FLOPs of a config whose epoch takes ``epoch_s``, on the same line."""
        low, high = self.flops[0], self.flops[-1]
        if self.epoch_s_costly <= self.epoch_s_cheap:
            return high if epoch_s >= self.epoch_s_cheap else low
        return low + (epoch_s - self.epoch_s_cheap) / (self.epoch_s_costly - self.epoch_s_cheap) * (high - low)

    def capped(self, max_epoch_s: float) -> tuple[float, float] | None:
        """The FLOPs ceiling for configs whose epoch is at most ``max_epoch_s`` (the cheap corner's at least) and
        the mean epoch of the drawn configs under it; None where every drawn config is under it, or where the
        corners' times do not grow with their FLOPs (a text model's cost may lie in its sequence length)."""
        if max_epoch_s >= self.epoch_s_costly or self.epoch_s_costly <= self.epoch_s_cheap:
            return None
        ceiling = max(self.flops_at(max_epoch_s), self.flops[0])
        under = [self.epoch_s_at(f) for f in self.flops if f <= ceiling]
        return ceiling, sum(under) / len(under)


def slots(spec: Spec) -> int:
    """How many trials fit on this machine at once: its CPUs over a trial's, and its GPUs over a trial's where a
    trial takes some (the local count, also for a search on a cluster)."""
    fit = (os.cpu_count() or 1) // max(spec.cpus, 1e-9)
    if spec.gpus:
        fit = min(fit, torch.cuda.device_count() // spec.gpus)
    return max(1, int(fit))


def calibrate(spec: Spec, data_dir: Path, budget_s: float, queued: Sequence[dict] = ()) -> Calibration:
    """Time the space's corners on the search's data (see the module), and count the cost of the ``queued`` configs
    (complete ones). Each timing aims at ~0.5 % of the budget, between 0.25 and 2 seconds, and a budget under 10
    minutes draws fewer configs (down to 4), so that calibration is a small share of any budget."""
    started = time.perf_counter()
    aim = min(max(0.005 * budget_s, 0.25), 2.0)
    candidates = min(max(int(budget_s / 50), 4), CANDIDATES)
    trainable = protocol.load_trainable(spec.trainable)
    data = datasets.load_dataset(spec.dataset, data_dir, "search", 1.0, training.device())
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, math.floor(spec.cpus)))  # as a trial has them
    try:
        drawn = _candidates(spec, candidates)
        try:
            unit = "flops"
            counted = sorted(((_cost(trainable, spec, c, data, unit), i, c) for i, c in enumerate(drawn)))
        except RuntimeError:  # FlopCounterMode cannot follow the step (a GAN's gradient penalty: autograd.grad)
            unit = "s"
            counted = sorted(((_cost(trainable, spec, c, data, unit), i, c) for i, c in enumerate(drawn)))
        queued_costs = tuple(_cost(trainable, spec, c, data, unit) for c in queued)
        (_, _, cheap), (_, _, costly) = counted[0], counted[-1]
        (cheap_s, build_s), (costly_s, costly_build_s) = (_epoch_s(trainable, c, data, aim) for c in (cheap, costly))
        speedup = 1.0
        if threads > torch.get_num_threads() and data.device.type == "cpu":  # the retrain runs with all of them
            torch.set_num_threads(threads)
            speedup = min(max(costly_s / _epoch_s(trainable, costly, data, aim)[0], 1.0), threads * PARALLEL_EFFICIENCY)
        train, val = (len(data.splits[split][1]) for split in ("train", "val"))
        speedup *= train / (train + val)
    finally:
        torch.set_num_threads(threads)
    flops = tuple(c[0] for c in counted)
    found = Calibration(cheap_s, costly_s, 0.0, TRIAL_START_S + max(build_s, costly_build_s), 0.0, flops, unit,
                        queued_costs, speedup)  # fmt: skip
    return dataclasses.replace(found, epoch_s_mean=found.epoch_s_at(sum(flops) / len(flops)),
                               seconds=time.perf_counter() - started)  # fmt: skip


def _candidates(spec: Spec, n: int) -> list[dict]:
    """Complete configs: the baseline (if any) and ``n`` drawn at random from the space."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    drawn = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=spec.seed))
    sampled = [drawn.ask(spec.params).params for _ in range(n if spec.params else 1)]
    return [spec.config(values) for values in ([spec.baseline] if spec.baseline else []) + sampled]


def _sliced(data: datasets.Data, n: int) -> datasets.Data:
    """``data`` with its first ``n`` training and validation examples."""
    splits = {k: (data.splits[k][0][:n], data.splits[k][1][:n]) for k in ("train", "val")}
    return dataclasses.replace(data, splits=splits)


def _cost(trainable: protocol.Trainable, spec: Spec, config: dict, data: datasets.Data, unit: str) -> float:
    """A training step's cost per example of ``config``: its FLOPs (unit "flops"), or its seconds on this process's
    threads (unit "s": where FlopCounterMode cannot follow the step, a slower and noisier stand-in)."""
    parts = training.build(trainable, config, _sliced(data, SLICE), spec.seed)
    if unit == "s":
        run = lambda d: trainable.train_epoch(parts, d, config)  # noqa: E731
        n = _smallest(run, data, COUNTED, len(data.splits["train"][1]))
        return _timed(run, _sliced(data, n)) / n
    step = _sliced(data, COUNTED)
    with FlopCounterMode(display=False) as counter:
        trainable.train_epoch(parts, step, config)
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
        # the first run pays one-off costs (imports, lazy setup) and finds how few examples make a step
        n = _smallest(run, data, min(total, config.get("batch_size", 64)), total)
        seconds = _timed(run, _sliced(data, n))
        more = min(total, int(aim * n / max(seconds, 1e-6)))
        if more > n:  # else the warm-up, a little slow, is the timing: a costly config on a small budget
            n, seconds = more, _timed(run, _sliced(data, more))
        per_example[split] = seconds / n * total
    return per_example["train"] + per_example["val"], build_s


def _smallest(run, data: datasets.Data, n: int, most: int) -> int:
    """How many examples, from ``n`` on and doubling up to ``most``, ``run`` takes without a ValueError (a GAN's
    epoch must hold d_steps batches); it has run once on them."""
    while True:
        try:
            run(_sliced(data, n))
            return n
        except ValueError:
            if n >= most:
                raise
            n = min(2 * n, most)


def _timed(run, data: datasets.Data) -> float:
    start = time.perf_counter()
    run(data)
    if data.device.type == "cuda":
        torch.cuda.synchronize(data.device)
    return time.perf_counter() - start


def plan_for(spec: Spec, data_dir: Path, fixed: dict, retrain_budget_s: float | None = None,
             no_priors: bool = False) -> Plan:  # fmt: skip
    """The plan of a search of ``spec`` (with the command line's options applied) within its time budget;
    ``fixed``: the user's flags that the plan keeps (tunelab.spec.planner.FLAGS' keys). A grid keeps its size.
    ``retrain_budget_s``: the most one seed's retrain of the best config may take (the search's budget where
    None); the search then tries only configs whose retrain fits it (a grid tries all of its own).

    The plan counts the configs that the search queues first, which train all their epochs, each at its epoch on
    the line through the corners: the baseline (not in a grid), then the file's priors as tunelab.engine.priors.points
    queues them (none with ``no_priors``, the run's --no-priors): those inside the space and under the plan's
    ceiling, by calibration's count of their cost (the FLOPs that Ceiling counts; where calibration times steps
    instead, a prior near the ceiling may fall on the other side of it in the search)."""
    assert spec.time_budget_s is not None, "a plan needs a time budget"
    if spec.method == "grid":
        fixed = {"trials": spec.run_cap} | fixed
    baseline = [spec.config(spec.baseline)] if spec.baseline and spec.method != "grid" else []
    inside = [] if no_priors else [spec.config(point) for point in priors.inside(spec)]
    found = calibrate(spec, data_dir, spec.time_budget_s, baseline + inside)
    retrain_budget_s = retrain_budget_s or spec.time_budget_s
    # the budget over the retrain's epochs, as an epoch at a trial's threads; less the planner's margin, as the
    # search's own budget: the cost line errs between the corners it was measured at
    max_epoch_s = retrain_budget_s * (1 - MARGIN) / fixed.get("max_epochs", spec.max_epochs) * found.retrain_speedup
    capped = found.capped(max_epoch_s) if spec.method != "grid" else None
    costs = found.queued[: len(baseline)] + tuple(
        cost for cost in found.queued[len(baseline) :] if capped is None or cost <= capped[0])  # fmt: skip
    floor = min(found.epoch_s_cheap, found.epoch_s_costly)  # below the cheap corner the line is not measured
    plan = make_plan(spec.time_budget_s, found.epoch_s_cheap, found.epoch_s_costly, found.overhead_s, slots(spec),
                     fixed, spec.max_epochs, calibration_s=found.seconds,
                     epoch_s_mean=capped[1] if capped else found.epoch_s_mean, retrain_budget_s=retrain_budget_s,
                     max_epoch_s=found.epoch_s_at(capped[0]) if capped else None,
                     queued_epoch_s=[max(found.epoch_s_at(cost), floor) for cost in costs],
                     baseline=bool(baseline), retrain_speedup=found.retrain_speedup)  # fmt: skip
    return dataclasses.replace(plan, max_flops=capped[0], cost_unit=found.unit) if capped else plan


class Ceiling:
    """A planned search's check of a config before it runs (``tunelab.store.study.StudySearch``): its FLOPs per
    example against the plan's ``max_flops``. It loads the trainable and a slice of the data when first asked, and
    leaves them behind when Ray saves the searcher."""

    def __init__(self, spec: Spec, data_dir: Path, max_flops: float, unit: str = "flops"):
        self.spec, self.data_dir, self.max_flops, self.unit = spec, data_dir, max_flops, unit
        self._loaded: tuple | None = None

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_loaded": None}

    def __call__(self, params: dict) -> float:
        """The cost of the config of ``params`` over the ceiling's (above 1: it does not fit)."""
        trainable, data = self._load()
        return _cost(trainable, self.spec, self.spec.config(params), data, self.unit) / self.max_flops

    def _load(self) -> tuple[protocol.Trainable, datasets.Data]:
        if self._loaded is None:
            data = datasets.load_dataset(self.spec.dataset, self.data_dir, "search", 1.0, torch.device("cpu"))
            # 8 slices: a GAN's d_steps batches
            self._loaded = protocol.load_trainable(self.spec.trainable), _sliced(data, 8 * SLICE)
        return self._loaded


def apply(run: StoredRun, plan: Plan) -> StoredRun:
    """``run`` searching as planned: its trials, epochs, rungs, data fraction and concurrency, and Ray's budget the
    user's less what calibration took."""
    hyperband = {"min_iter": plan.rungs[0], "eta": plan.eta} if plan.rungs else None
    spec = dataclasses.replace(run.spec, run_cap=plan.trials, max_epochs=plan.max_epochs, hyperband=hyperband,
                               time_budget_s=plan.hard_stop_s(plan.calibration_s))  # fmt: skip
    options = dataclasses.replace(run.options, subset=plan.subset, concurrency=plan.concurrency)
    return dataclasses.replace(run, spec=spec, options=options, plan=plan)
