"""Builds and runs the Ray Tune search of one run: Optuna sampler, ASHA, resources, storage, callbacks."""

import logging
import math
import os
import time
import warnings

import optuna
import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from tunelab import data as datasets, leaderboard, tracking
from tunelab.runs import Run
from tunelab.spaces import Spec, grid_values
from tunelab.trial import TrialJob, run_trial

MAX_FAILURES = 2  # a failed trial is restarted from its latest checkpoint this many times before it counts as failed


class Progress(tune.Callback):
    """One line per epoch of each trial, and one when a trial ends."""

    def __init__(self, spec: Spec):
        self.metric, self.started, self.ended = spec.metric, time.monotonic(), 0

    def _line(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.0f}s] {text}", flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._line(f"trial {trial.trial_id} started: {', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in trial.config.items())}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._line(f"trial {trial.trial_id} epoch {result.get('epoch')}: {self.metric}={result.get(self.metric, float('nan')):.4f}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended += 1
        self._line(f"trial {trial.trial_id} finished ({self.ended} of {len(trials)} started trials done)")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended += 1
        self._line(f"trial {trial.trial_id} FAILED after {MAX_FAILURES} retries (see {trial.local_path}/error.txt); the search goes on")


def _searcher(spec: Spec) -> OptunaSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # TPE's group=True
    multi = len(spec.metrics) > 1
    if spec.method == "grid":
        sampler = optuna.samplers.GridSampler({k: grid_values(d) for k, d in spec.params.items()}, seed=spec.seed)
    elif spec.method == "random":
        sampler = optuna.samplers.RandomSampler(seed=spec.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=spec.seed, multivariate=True, group=True)
    return OptunaSearch(
        space=spec.params,
        metric=spec.metrics if multi else spec.metric,
        mode=spec.modes if multi else spec.mode,
        points_to_evaluate=[spec.baseline] if spec.baseline and spec.method != "grid" else None,
        sampler=sampler,
    )


def _trainable(run: Run):
    spec = run.spec
    job = TrialJob(
        trainable=spec.trainable,
        dataset=spec.dataset,
        data_dir=str(run.data_dir.resolve()),
        subset=run.options.subset,
        base_config=spec.config({}),
        metric=spec.metric,
        mode=spec.mode,
        threads=max(1, math.floor(spec.cpus)),
        seed=spec.seed,
    )
    return tune.with_resources(tune.with_parameters(run_trial, job=job), {"cpu": spec.cpus, "gpu": spec.gpus})


def _run_config(run: Run, mode: str) -> tune.RunConfig:
    spec = run.spec
    return tune.RunConfig(
        name=run.name,
        storage_path=str(run.dir.parent.resolve()),
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=1, checkpoint_score_attribute=spec.metric, checkpoint_score_order=spec.mode
        ),  # the best and the latest
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
        callbacks=[Progress(spec), *tracking.trial_callbacks(mode, spec.project, run.name)],
        verbose=0,
    )


def _init_ray(address: str | None) -> None:
    # Our Progress callback is the live output: Ray's own tables and checkpoint-frequency warnings are off.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "10")  # W&B's per-result logging takes ~1 s on a busy 2-core CPU
    # "local": a new Ray of our own, not the latest one started on this machine (another search's)
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             configure_logging=True)  # fmt: skip


def search(run: Run) -> None:
    """Run a new search and write its leaderboard."""
    spec = run.spec
    datasets.check(spec.dataset, run.data_dir)
    mode = tracking.configure(run.options.wandb, run.dir)
    run.save()
    searcher = _searcher(spec)
    if run.options.concurrency:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=run.options.concurrency)
    single = len(spec.metrics) == 1
    scheduler = None
    if spec.hyperband and single and spec.max_epochs > spec.hyperband["min_iter"]:
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=spec.max_epochs,
                                  grace_period=spec.hyperband["min_iter"], reduction_factor=spec.hyperband["eta"])  # fmt: skip
    _init_ray(run.options.address)
    try:
        tuner = tune.Tuner(
            _trainable(run),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                metric=spec.metric if single else None,
                mode=spec.mode if single else None,
                num_samples=spec.run_cap,
                time_budget_s=spec.time_budget_s,
                reuse_actors=False,
                trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
            ),
            run_config=_run_config(run, mode),
        )
        tuner.fit()
    finally:
        ray.shutdown()
        leaderboard.write(run)  # also after Ctrl-C: what finished is on the leaderboard


def resume(run: Run) -> None:
    """Continue an interrupted search: finished trials and the sampler's history are kept."""
    datasets.check(run.spec.dataset, run.data_dir)
    tracking.configure(run.options.wandb, run.dir)
    _init_ray(run.options.address)
    try:
        tuner = tune.Tuner.restore(str(run.dir.resolve()), trainable=_trainable(run), resume_unfinished=True)
        tuner.fit()
    finally:
        ray.shutdown()
        leaderboard.write(run)
