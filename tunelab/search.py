"""Builds and runs the Ray Tune search of one run: Optuna sampler (on the run's study file, see tunelab.study), ASHA,
resources, storage, callbacks."""

import contextlib
import math
import time
import warnings

import optuna
import pandas as pd
import pyarrow.fs
from ray import tune
from ray.tune import ResultGrid
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter

from tunelab import UserError, cluster, data as datasets, leaderboard, pareto, protocol, study, tracking
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
        config = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.config.items())
        self._line(f"trial {trial.trial_id} started: {config}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric, float("nan"))
        self._line(f"trial {trial.trial_id} epoch {result.get('epoch')}: {self.metric}={value:.4f}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended += 1
        self._line(f"trial {trial.trial_id} finished ({self.ended} of {len(trials)} started trials done)")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended += 1
        self._line(f"trial {trial.trial_id} FAILED after {MAX_FAILURES} retries "
                   f"(see {trial.local_path}/error.txt); the search goes on")


def sampler(spec: Spec) -> optuna.samplers.BaseSampler:
    """The file's method as an Optuna sampler, seeded."""
    if spec.method == "grid":
        return optuna.samplers.GridSampler({k: grid_values(d) for k, d in spec.params.items()}, seed=spec.seed)
    if spec.method == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    # TPE samples at random until it has n_startup_trials results (Optuna's default, 10, is most of a short
    # search); the constant liar keeps trials that run at once from being sampled at the same point
    startup = min(10, max(2, spec.run_cap // 4))
    return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=startup, multivariate=True, group=True,
                                      constant_liar=True)  # fmt: skip


def _searcher(run: Run, mode: str) -> study.StudySearch:
    """Ray's OptunaSearch on a new study in the run's folder (the baseline first, where the file has one)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # TPE's group and constant_liar
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return study.searcher(run, sampler(run.spec), wandb=mode != "disabled")


def _trainable(run: Run):
    spec = run.spec
    job = TrialJob(spec=spec, data_dir=str(run.data_dir.resolve()), subset=run.options.subset,
                   threads=max(1, math.floor(spec.cpus)))  # fmt: skip
    shipped = datasets.read(spec.dataset, run.data_dir) if run.options.address else None  # see tunelab.cluster
    trial = tune.with_parameters(run_trial, job=job, shipped=shipped)
    return tune.with_resources(trial, {"cpu": spec.cpus, "gpu": spec.gpus})


def _run_config(run: Run, mode: str) -> tune.RunConfig:
    spec = run.spec
    return tune.RunConfig(
        name=run.name,
        storage_path=run.options.storage or str(run.dir.parent.resolve()),
        # Ray keeps every checkpoint while the search runs (see keep_latest_checkpoints)
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
        # each trial's results as the leaderboard (Ray's ExperimentAnalysis) reads them; no TensorBoard files
        callbacks=[Progress(spec), JsonLoggerCallback(), CSVLoggerCallback(), study.StudyWriter(run),
                   *tracking.trial_callbacks(mode, spec.project, run.name, spec.config, run.dir)],
        verbose=0,
    )


def started(run: Run) -> bool:
    """Whether Ray's state of a search is already where this run keeps its trials."""
    try:
        return tune.Tuner.can_restore(run.experiment_path)
    except (OSError, ValueError) as e:  # pyarrow's: a bucket it cannot reach, a scheme it does not know
        flag = " (--storage)" if run.options.storage else ""
        raise UserError(f"cannot use {run.experiment_path!r}{flag} to keep the trials: {e}") from None


def _check_data(run: Run) -> None:
    """Read the data sets the trials will read, so that a missing one is reported before the search starts."""
    for name in (run.spec.dataset, *protocol.load(run.spec.trainable).extra_datasets):
        datasets.check(name, run.data_dir)


def _prepare(run: Run) -> None:
    """The trainable's own checks before Ray starts, over every value the search may try."""
    prepare = protocol.load(run.spec.trainable).prepare
    if prepare:
        values = {k: [v] for k, v in run.spec.config({}).items()}
        values |= {k: list(d.choices) for k, d in run.spec.params.items()
                   if isinstance(d, optuna.distributions.CategoricalDistribution)}
        prepare(values, run.data_dir)


def _scheduler(spec: Spec):
    """ASHA over the epochs (for several objectives, over Pareto layers: see tunelab.pareto), or None."""
    if not spec.rungs:  # no early_terminate, or its first rung is at max_epochs or beyond
        return None
    grace, eta = spec.hyperband["min_iter"], spec.hyperband["eta"]
    if len(spec.metrics) > 1:
        return pareto.ParetoASHA(spec.metrics, spec.modes, grace, eta, spec.max_epochs)
    return ASHAScheduler(time_attr="training_iteration", max_t=spec.max_epochs, grace_period=grace,
                         reduction_factor=eta)


def search(run: Run) -> pd.DataFrame:
    """Run a new search; write and return its leaderboard."""
    spec = run.spec
    mode = tracking.mode(run.options.wandb)  # a mode that cannot work is refused before anything else
    _check_data(run)
    _prepare(run)
    with cluster.connected(run.options.address, spec.trainable, spec.cpus, spec.gpus) as slots:
        run.save()
        # Ray starts as many trials together as the limiter allows (one at a time without it)
        searcher = ConcurrencyLimiter(_searcher(run, mode), max_concurrent=run.options.concurrency or slots)
        single = len(spec.metrics) == 1
        tuner = tune.Tuner(
            _trainable(run),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=_scheduler(spec),
                metric=spec.metric if single else None,
                mode=spec.mode if single else None,
                num_samples=spec.run_cap,
                time_budget_s=spec.time_budget_s,
                reuse_actors=True,  # a trial's worker process, its imports and its loaded data serve the next trial
                trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
            ),
            run_config=_run_config(run, mode),
        )
        return _fit(run, tuner, mode)


def resume(run: Run) -> pd.DataFrame:
    """Continue an interrupted search (finished trials and the sampler's history, its study, are kept); write and
    return its leaderboard."""
    mode = tracking.mode(run.options.wandb)  # a mode that cannot work is refused before anything else
    _check_data(run)
    with cluster.connected(run.options.address, run.spec.trainable, run.spec.cpus, run.spec.gpus):
        tuner = tune.Tuner.restore(run.experiment_path, trainable=_trainable(run), resume_unfinished=True)
        return _fit(run, tuner, mode)


def _fit(run: Run, tuner: tune.Tuner, mode: str) -> pd.DataFrame:
    tracking.warm_up(mode)
    try:
        results = tuner.fit()
    except BaseException:
        with contextlib.suppress(UserError):  # what finished before the error is on the leaderboard, if anything did
            board = leaderboard.write(run)
            with contextlib.suppress(Exception):  # and in the study; the search's own error is the one to see
                study.settle(run, board)
        raise
    keep_latest_checkpoints(results)
    board = leaderboard.write(run)
    study.settle(run, board)
    tracking.log_leaderboard(mode, run.spec.project, run.name, board, run.dir)
    return board


def keep_latest_checkpoints(results: ResultGrid) -> None:
    """Delete every checkpoint of a finished or interrupted search but each trial's latest as Ray's saved state
    names it, which resume restores. Ray's saved state lags the trials by up to a second, so a trial's older
    checkpoints must outlive it while the search runs (Ray deleting them as soon as a newer one arrives can leave
    the state pointing at a deleted checkpoint). A trial stopped as the search ended may have written a newer one
    that Ray never registered: that one goes too (keeping it instead left resume pointing at a deleted one)."""
    for result in results:
        keep = result.checkpoint.path if result.checkpoint else None
        for info in result.filesystem.get_file_info(pyarrow.fs.FileSelector(result.path, allow_not_found=True)):
            checkpoint = info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith("checkpoint_")
            if checkpoint and info.path != keep:
                result.filesystem.delete_dir(info.path)
