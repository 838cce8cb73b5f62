"""Builds and runs the Ray Tune search of one run: Optuna sampler (on the run's study, the record of its trials: see
tunelab.engine.record), ASHA, resources, storage, callbacks."""

import contextlib
import math
import posixpath
import signal
import threading
import time
import warnings
from collections.abc import Sequence

import optuna
import pandas as pd
import pyarrow.fs
from optuna.trial import FrozenTrial
from ray import tune
from ray.tune import ResultGrid
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter, SearchGenerator

from tunelab import data as datasets, progress, tracking
from tunelab.engine import calibrate, cluster, priors, record, schedulers, warmstart
from tunelab.engine.checks import check_search_metrics
from tunelab.engine.trial import TrialJob, run_trial
from tunelab.errors import Failed, UserError
from tunelab.spec import planner
from tunelab.spec.rules import end_status
from tunelab.spec.spaces import Spec, grid_values, read_yaml
from tunelab.store import leaderboard, study
from tunelab.store.runs import INFO_FILE, StoredRun
from tunelab.trainable import protocol

MAX_FAILURES = 2  # a failed trial is restarted from its latest checkpoint this many times before it counts as failed
FINISHED = ("completed", "stopped early", "cut by the time budget")  # the leaderboard's statuses of trials that ended


class Progress(tune.Callback):
    """What a search shows while it runs. Where someone watches (a terminal, a notebook: tunelab.progress), one bar:
    trials ended of those planned, how many run, the best value so far, the time elapsed and the plan's expected
    time. Elsewhere (CI, a log, ``nohup``) one line per trial that ends. A failed trial always gets a line;
    ``verbose`` adds a line per trial start and per epoch (and per trial end under the bar)."""

    def __init__(self, spec: Spec, expected_s: float | None = None, verbose: bool = False):
        self.spec, self.expected_s, self.verbose = spec, expected_s, verbose
        self.single = not spec.multi_objective  # several objectives have no single best
        self.started = self.shown = time.monotonic()
        self.ended: set[str] | None = None  # the trials that ended, from the first step on (a resumed search's too)
        self.best: float | None = None
        self.bar = None

    def on_step_begin(self, iteration, trials, **info):
        if self.ended is None:
            self.ended = {t.trial_id for t in trials if t.status in ("TERMINATED", "ERROR")}
            for trial in trials:  # a resumed search's
                self._better(trial.metric_analysis.get(self.spec.metric, {}).get(self.spec.mode))
            if progress.watched():  # no rate: trials that ASHA stops are quick, the others not
                self.bar = progress.bar(
                    self.spec.run_cap,
                    "trial",
                    desc=self.spec.name,
                    initial=len(self.ended),
                    bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
                )
        if time.monotonic() - self.shown >= 1:  # the bar's elapsed time goes on between trials' events
            self._show(trials)

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.verbose:
            config = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.config.items())
            self._line(f"trial {trial.trial_id} started: {config}")
        self._show(trials)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._better(result.get(self.spec.metric))
        if self.verbose:
            self._line(f"trial {trial.trial_id} epoch {result.get('epoch')}: {self._values(result)}")
        self._show(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result
        epochs = result.get("epoch") or 0
        status = end_status(self.spec, epochs)
        self._end(trials, trial, f"finished ({status}, {epochs} epoch{'s' if epochs != 1 else ''}): "
                                 f"{self._values(result)}")  # fmt: skip

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trials, trial, f"FAILED after {MAX_FAILURES} retries (see {trial.local_path}/error.txt); the "
                                 f"search goes on", failed=True)  # fmt: skip

    def on_experiment_end(self, trials, **info):
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _end(self, trials, trial, what: str, failed: bool = False) -> None:
        assert self.ended is not None  # set at the first step, before any trial's event
        self.ended.add(trial.trial_id)
        if self.bar is None or self.verbose or failed:
            best = f"; best {self.spec.metric}={self.best:.4g}" if self.best is not None else ""
            done, planned = len(self.ended), self.spec.run_cap
            count = f"{done} of {planned} trials done" if done <= planned else f"{done} trials done, {planned} planned"
            self._line(f"trial {trial.trial_id} {what}{best}; {count}")
        self._show(trials)

    def _better(self, value) -> None:
        """Keep ``value`` as the best so far if it is (one objective)."""
        if not self.single or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        if self.best is None or (value > self.best if self.spec.mode == "max" else value < self.best):
            self.best = value

    def _values(self, result: dict) -> str:
        values = [f"{m}={result[m]:.4g}" if isinstance(result[m], float) else f"{m}={result[m]}"
                  for m in self.spec.metrics if isinstance(result.get(m), (int, float))]  # fmt: skip
        return ", ".join(values) or "no value"

    def _show(self, trials) -> None:
        self.shown = time.monotonic()
        if self.bar is None:
            return
        running = sum(t.status == "RUNNING" and t.trial_id not in self.ended for t in trials)
        shown = [f"{running} running"]
        if self.best is not None:
            shown.append(f"best {self.spec.metric}={self.best:.4g}")
        if self.expected_s:
            shown.append(f"expected {self.bar.format_interval(self.expected_s)}")
        self.bar.total = max(self.bar.total, len(self.ended) + running)  # a planned search's trials beyond its plan
        self.bar.update(len(self.ended) - self.bar.n)
        self.bar.set_postfix_str(", ".join(shown))

    def _line(self, text: str) -> None:
        progress.line(f"[{time.monotonic() - self.started:6.0f}s] {text}")


class CtrlC(tune.Callback):
    """Whether Ctrl-C stopped the search. Ray handles the first press itself: it stops the trials, saves its state
    and returns from ``fit`` as if the search had ended, telling no one. Ray calls ``setup`` after it installs its
    SIGINT handler, which is wrapped here (the handler puts back the one from before the search, so a second press
    raises KeyboardInterrupt as ever)."""

    def __init__(self):
        self.pressed = False

    def setup(self, **info):
        ray_handler = signal.getsignal(signal.SIGINT)
        if not callable(ray_handler) or threading.current_thread() is not threading.main_thread():
            return

        def pressed(sig, frame):
            self.pressed = True
            ray_handler(sig, frame)

        signal.signal(signal.SIGINT, pressed)


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


def _searcher(
    run: StoredRun, mode: str, resumed: bool = False, imported: Sequence[FrozenTrial] = ()
) -> record.StudySearch:
    """The searcher on a new study in the run's folder (``imported`` trials of earlier runs first, then the baseline,
    where the file has one, then its priors: tunelab.engine.priors), or on the study there (``resumed``)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # TPE's group and constant_liar
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    plan = run.plan
    admit = None if not plan or plan.max_flops is None else calibrate.Ceiling(run.spec, run.data_dir, plan.max_flops,
                                                                               plan.cost_unit)  # fmt: skip
    wandb = mode != "disabled"
    if resumed:
        return record.StudySearch(run, sampler(run.spec), wandb, resumed=True, admit=admit)
    queued = priors.points(run, admit)  # prints which it evaluates first, and which it skips
    study.create(run, imported)
    return record.StudySearch(run, sampler(run.spec), wandb, admit=admit, priors=queued)


def _trainable(run: StoredRun, data_sets: tuple[str, ...]):
    """``data_sets``: the names of those the trials read (``_check``), shipped to a cluster's nodes."""
    spec = run.spec
    job = TrialJob(spec=spec, data_dir=str(run.data_dir.resolve()), subset=run.options.subset,
                   threads=max(1, math.floor(spec.cpus)))  # fmt: skip
    shipped = None  # on a cluster, every data set the trials read, by name (see tunelab.engine.cluster)
    if run.options.address:
        shipped = {name: datasets.read(name, run.data_dir) for name in data_sets}
    trial = tune.with_parameters(run_trial, job=job, shipped=shipped)
    return tune.with_resources(trial, {"cpu": spec.cpus, "gpu": spec.gpus})


def _callbacks(run: StoredRun, mode: str, verbose: bool) -> list[tune.Callback]:
    """The search's callbacks, ``CtrlC`` and ``Progress`` first (``_fit``'s); the record of the trials; each trial's
    results in its folder (result.json, progress.csv) for people to read, no TensorBoard files."""
    spec = run.spec
    ctrl_c, shown = CtrlC(), Progress(spec, run.plan.expected_s if run.plan else None, verbose)
    return [ctrl_c, shown, record.TrialRecord(run, ctrl_c), JsonLoggerCallback(), CSVLoggerCallback(),
            *tracking.trial_callbacks(mode, spec.project, run.name, spec.config, run.dir)]  # fmt: skip


def _run_config(run: StoredRun, callbacks: list[tune.Callback]) -> tune.RunConfig:
    return tune.RunConfig(
        name=run.name,
        storage_path=run.options.storage or str(run.dir.parent.resolve()),
        # Ray keeps every checkpoint while the search runs (see keep_latest_checkpoints)
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
        callbacks=callbacks,
        verbose=0,
    )


def started(run: StoredRun) -> bool:
    """Whether Ray's state of a search is already where this run keeps its trials."""
    try:
        return tune.Tuner.can_restore(run.experiment_path)
    except (OSError, ValueError) as e:  # pyarrow's: a bucket it cannot reach, a scheme it does not know
        flag = " (--storage)" if run.options.storage else ""
        raise UserError(f"cannot use {run.experiment_path!r}{flag} to keep the trials: {e}") from None


def check_unused(run: StoredRun) -> None:
    """Refuse a new search in a folder that holds a run which got going (trials in its study, a best config, a
    retrain), wherever that run keeps its trials (--storage). A folder left by a search that never got going (no
    trial) is the new search's: its study is replaced (``study.create``)."""
    trials, since = study.started_trials(run.study_file)
    if not trials and not run.best_file.exists() and not run.retrain_dir.exists():
        return
    try:
        experiment = read_yaml(run.dir / INFO_FILE)["experiment"]
    except (UserError, TypeError, KeyError):  # missing or damaged: the study still counts
        experiment = "an experiment"
    searched = f"searched {experiment}" + (f" on {since:%Y-%m-%d %H:%M}" if since else "")
    searched += f", {trials} trial{'s' if trials != 1 else ''}" if trials else ""
    raise UserError(f"{run.dir} already holds run {run.name} ({searched}): continue it with `tunelab resume "
                    f"{run.name}`, or choose another --name")  # fmt: skip


def _check(run: StoredRun) -> tuple[str, ...]:
    """What a search or resume checks before Ray starts: the data sets the trials will read (a missing one is reported
    now), the trainable's own checks over every value the search may try (its ``prepare``), and the metric of one
    that declares no METRICS (spaces checked the others' when it read the file). Returns the names of those data
    sets: the experiment's, the trainable's EXTRA_DATASETS and those its ``prepare`` names for these values."""
    trainable = protocol.load_trainable(run.spec.trainable)
    names = (run.spec.dataset, *trainable.extra_datasets)
    for name in names:
        datasets.check(name, run.data_dir)
    if trainable.prepare:
        values = {k: [v] for k, v in run.spec.config({}).items()}
        values |= {
            k: list(d.choices)
            for k, d in run.spec.params.items()
            if isinstance(d, optuna.distributions.CategoricalDistribution)
        }
        names += tuple(trainable.prepare(values, run.data_dir) or ())
    if not trainable.metric_names:
        check_search_metrics(run.spec, trainable)
    return tuple(dict.fromkeys(names))


def _scheduler(spec: Spec, queued: set[str]):
    """ASHA over the epochs (for several objectives, over Pareto layers: see tunelab.engine.schedulers), or None.
    ``queued``: the trial ids of the configs queued first (the searcher's), which train all their epochs
    (_QueuedFinish)."""
    if spec.hyperband is None or not spec.rungs:  # no early_terminate, or its first rung is at max_epochs or beyond
        return None
    grace, eta = spec.hyperband["min_iter"], spec.hyperband["eta"]
    if spec.multi_objective:
        return schedulers.ParetoASHA(spec.metrics, spec.modes, grace, eta, spec.max_epochs)
    return _QueuedFinish(queued, time_attr="training_iteration", max_t=spec.max_epochs, grace_period=grace,
                         reduction_factor=eta)  # fmt: skip


class _QueuedFinish(ASHAScheduler):
    """Ray's ASHA, except that the configs queued first (the baseline and the priors) train all their epochs: their
    values still set the rungs' bars, but an early rung, where a config that ends best may trail a quick starter,
    does not stop them (bench/replay.py: ASHA stopped, at its first rung, the prior that would have reached the
    target; let finish, the priors reached it in 0.07x random search's time, stopped 1.08x or more)."""

    def __init__(self, queued: set[str], **kwargs):
        super().__init__(**kwargs)
        self.queued, self.max_epochs = queued, kwargs["max_t"]

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)
        early = result.get("training_iteration", 0) < self.max_epochs
        return self.CONTINUE if action == self.STOP and early and trial.trial_id in self.queued else action


def search(run: StoredRun, verbose: bool = False) -> pd.DataFrame:
    """Run a new search; write and return its leaderboard. ``verbose``: show each trial's start and epochs
    (``Progress``)."""
    spec = run.spec
    mode = tracking.mode(run.options.wandb)  # a mode that cannot work is refused before anything else
    data_sets = _check(run)
    imported = warmstart.trials(run)  # earlier runs' trials (--warm-start), read and checked before Ray starts
    with cluster.connected(run.options.address, spec.trainable, spec.cpus, spec.gpus) as slots:
        run.save()
        # Ray starts as many trials together as the limiter allows (one at a time without it)
        sampling = _searcher(run, mode, imported=imported)
        searcher = ConcurrencyLimiter(sampling, max_concurrent=run.options.concurrency or slots)
        single = not spec.multi_objective
        callbacks = _callbacks(run, mode, verbose)
        tuner = tune.Tuner(
            _trainable(run, data_sets),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=_scheduler(spec, sampling.queued),
                metric=spec.metric if single else None,
                mode=spec.mode if single else None,
                num_samples=_samples(run),
                time_budget_s=spec.time_budget_s,
                reuse_actors=True,  # a trial's worker process, its imports and its loaded data serve the next trial
                trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
            ),
            run_config=_run_config(run, callbacks),
        )
        return _fit(run, tuner, mode, callbacks)


def _samples(run: StoredRun) -> int:
    """Ray's cap on the trials: the file's (or --trials), or for a planned search as many as its budget lasts for
    (the searcher ends it: Plan.more_trials)."""
    return planner.MAX_TRIALS if run.plan and "trials" not in run.plan.fixed else run.spec.run_cap


def resume(run: StoredRun, verbose: bool = False) -> pd.DataFrame:
    """Continue an interrupted search (finished trials and the sampler's history, its study, are kept); write and
    return its leaderboard. ``verbose``: as ``search``'s."""
    mode = tracking.mode(run.options.wandb)  # a mode that cannot work is refused before anything else
    data_sets = _check(run)
    searcher = _searcher(run, mode, resumed=True)  # a missing or damaged study is refused before Ray starts
    with cluster.connected(run.options.address, run.spec.trainable, run.spec.cpus, run.spec.gpus):
        try:
            tuner = tune.Tuner.restore(run.experiment_path, trainable=_trainable(run, data_sets),
                                       resume_unfinished=True)  # fmt: skip
        except ModuleNotFoundError as e:  # its saved callbacks name a module this tunelab no longer has
            raise UserError(
                f"{run.experiment_path} was saved by an older tunelab ({e}): resume it with that "
                f"version, or start anew with `tunelab search {run.spec.argument} --name "
                f"{run.name}-2`; its trials so far stay in its leaderboard"
            ) from None
        # Ray's saved state holds the callbacks and the searcher the search started with: their W&B mode, and the
        # run's folder and study file as they were then (a renamed or copied run's are another's). Tuner.restore
        # takes no new ones, so this run's replace them on Ray's TunerInternal (Ray 2.60); Ray then restores its
        # saved searcher's state into this one (the study is its state: StudySearch.restore, _Resumed).
        restored, callbacks = tuner._local_tuner, _callbacks(run, mode, verbose)
        assert restored is not None  # a local Tuner has one (a Ray Client's has not)
        restored.get_run_config().callbacks = callbacks
        limiter = restored._tune_config.search_alg
        assert isinstance(limiter, ConcurrencyLimiter)  # the one search() gave Ray
        limiter.searcher = searcher
        restored._tune_config.search_alg = _Resumed(limiter, run.experiment_path)
        return _fit(run, tuner, mode, callbacks)


class _Resumed(SearchGenerator):
    """Ray's wrapper of a searcher, for a resumed search. Ray restores the experiment it saved, whose storage says
    where new trials go: the run's folder as it was (a copied run's new trials would go to the first run's folder).
    It is pointed at where the run is now, as Ray points the trials it restores."""

    def __init__(self, searcher, experiment_path: str):
        super().__init__(searcher)
        self._path = experiment_path

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        # also the one in its spec, from which Ray makes the trials (the ignore: Ray types _experiment as None)
        storage = self._experiment.storage  # type: ignore[attr-defined]
        if "://" in self._path:
            storage.storage_filesystem, path = pyarrow.fs.FileSystem.from_uri(self._path)
        else:
            path = self._path
        storage.storage_fs_path, storage.experiment_dir_name = posixpath.split(path)


def _fit(run: StoredRun, tuner: tune.Tuner, mode: str, callbacks: list[tune.Callback]) -> pd.DataFrame:
    """Run the search; write and return its leaderboard. Ctrl-C (Ray's clean stop, or a second press) is a Failed
    with exit status 130, raised once the leaderboard holds what the search did."""
    ctrl_c, shown = callbacks[:2]
    assert isinstance(ctrl_c, CtrlC) and isinstance(shown, Progress)  # _callbacks' first two
    tracking.warm_up(mode)
    before = signal.getsignal(signal.SIGINT)
    try:
        results = tuner.fit()
    except BaseException as e:
        with contextlib.suppress(UserError):  # what finished before the error is on the leaderboard, if anything did
            leaderboard.write(run)
        if isinstance(e, KeyboardInterrupt):
            raise interrupted(run) from None
        raise
    finally:
        shown.close()  # Ray closes it as the search ends; a search that raised leaves no bar half drawn
        if before is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, before)  # Ray leaves its handler in place after a search that ended
    keep_latest_checkpoints(results)
    board = leaderboard.write(run)
    tracking.log_leaderboard(mode, run.spec.project, run.name, board, run.dir)
    if ctrl_c.pressed:
        raise interrupted(run)
    return board


def interrupted(run: StoredRun) -> Failed:
    return Failed(f"interrupted: `tunelab resume {run.name}` continues the search where it stopped", Failed.INTERRUPTED)


def outcome(run: StoredRun, board: pd.DataFrame) -> str | None:
    """A search that ended: a Failed unless a trial finished with a value (completed, stopped early, or cut by the
    time budget); a one-line warning where some trials failed; else None."""
    if board.empty:
        raise Failed(f"run {run.name!r} ran no trial")
    failed = board[board["status"] == "failed"]
    first = f"; the first: {_error(run, failed['trial_id'].iloc[0])}" if len(failed) else ""
    if not (board["status"].isin(FINISHED) & board[run.spec.metric].notna()).any():
        if len(failed) == len(board):
            raise Failed(f"every trial of run {run.name!r} failed ({len(board)}){first}")
        counts = ", ".join(f"{n} {status}" for status, n in board["status"].value_counts().items())
        raise Failed(f"no trial of run {run.name!r} reached a value of {run.spec.metric} ({counts}{first})")
    return f"warning: {len(failed)} of {len(board)} trials failed{first}" if len(failed) else None


def _error(run: StoredRun, trial_id: str) -> str:
    """A failed trial's error (the last line of Ray's error.txt) and where its error.txt is."""
    path = f"{run.experiment_path}/trial_{trial_id}/error.txt"
    try:
        filesystem, inner = pyarrow.fs.FileSystem.from_uri(path if "://" in path else f"file://{path}")
        with filesystem.open_input_stream(inner) as f:
            lines = f.readall().decode(errors="replace").strip().splitlines()
    except (OSError, ValueError) as e:
        return f"its {path} cannot be read ({e})"
    return f"{lines[-1].strip() if lines else '(an empty error)'} (see {path})"


def keep_latest_checkpoints(results: ResultGrid) -> None:
    """Delete every checkpoint of a finished or interrupted search but each trial's latest as Ray's saved state
    names it, which resume restores. Ray's saved state lags the trials by up to a second, so a trial's older
    checkpoints must outlive it while the search runs (Ray deleting them as soon as a newer one arrives can leave
    the state pointing at a deleted checkpoint). A trial stopped as the search ended may have written a newer one
    that Ray never registered: that one goes too (keeping it instead left resume pointing at a deleted one)."""
    for result in results:  # type: ignore[attr-defined]  # ResultGrid iterates by __getitem__, which mypy misses
        keep = result.checkpoint.path if result.checkpoint else None
        for info in result.filesystem.get_file_info(pyarrow.fs.FileSelector(result.path, allow_not_found=True)):
            checkpoint = info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith("checkpoint_")
            if checkpoint and info.path != keep:
                result.filesystem.delete_dir(info.path)
