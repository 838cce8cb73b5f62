"""A run's Optuna study on disk (``results/<run>/study.log``): the one module that writes it.

The file is an Optuna journal (``JournalStorage`` on a ``JournalFileBackend``), not SQLite: it is a log of
operations, one JSON line each, appended as the search goes, so optuna-dashboard (``tunelab dashboard``) can read
it while the search writes it (a reader takes no lock and ignores a line still being written), it works on file
systems where SQLite's locks do not (NFS), it needs no database schema, and a copy taken mid-search (``ray
rsync-down``) is readable up to its last whole line.

It holds one study, named after the run that started it (a renamed or copied run's keeps that name). Ray's
``OptunaSearch`` samples from it (``StudySearch``), so the study is the sampler's history too: what the sampler
learned from is what the dashboard shows, and ``tunelab resume`` continues the same study. Each trial has its
sampled values (params); its metric per epoch as intermediate values, step = epoch (the learning curve; with several
objectives none, Optuna's intermediate values and its TPE's use of them are for one objective); user attrs
``ray_trial_id``, ``wandb_run_id`` (where W&B is on), ``prior`` (a prior's, its index in the file's ``priors:``,
tunelab.priors), and once it ends ``status`` (the leaderboard's word),
``epochs`` and ``best_epoch``; and a state with the leaderboard's value(s) (for one objective the best epoch's
metric, for several every objective at the last epoch):

- COMPLETE: it trained all ``max_epochs`` epochs;
- PRUNED: ASHA (or Pareto-layer ASHA) stopped it earlier, or the search's time budget did; its value(s) are those it
  reached, as on the leaderboard (Optuna's own pruning would give it its last epoch's value instead). A stopped
  trial still teaches the sampler: TPE ranks pruned trials after the completed ones, the deepest first, then by
  their last epoch's intermediate value (its ``_split_pruned_trials``), so a trial stopped at a later rung with a
  good value counts among the good ones where too few trials completed, as BOHB's models of lower budgets do;
- FAIL with the status ``not tried``: the searcher drew it but a planned search's retrain budget rules it out
  (``StudySearch.suggest``); Ray never runs it and the leaderboard does not list it;
- FAIL: it failed after its retries (no value, as Optuna keeps none for a failed trial; its epochs stay as
  intermediate values), or the search stopped after the sampler drew it but before Ray recorded it (never run);
- RUNNING: it is running, or the search was interrupted (Ctrl-C) and ``tunelab resume`` continues it.

What happens to a trial is written by ``StudyWriter``, a Tune callback in the driver that sees every trial (Ray's
``ConcurrencyLimiter`` stops passing the end of a trial to the searcher once a resumed search continues it), and at
the end of a search by ``settle`` from the leaderboard, for the trials the search stopped without telling anyone
(a time budget's end). Every write goes straight to the storage (a pruned trial's value is the leaderboard's, which
``Study.tell`` does not allow); the samplers' ``after_trial`` hooks have nothing to do here (TPE without
constraints, random; grid's would stop a ``study.optimize`` loop, which Ray does not run).
"""

import datetime
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, cast

import optuna
import pandas as pd
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch

from tunelab import UserError, leaderboard, tracking
from tunelab.runs import Run

# the leaderboard's status -> the trial's state; "interrupted" and "pending" stay RUNNING (resume continues them)
STATES = {"completed": TrialState.COMPLETE, "stopped early": TrialState.PRUNED,
          "cut by the time budget": TrialState.PRUNED, "failed": TrialState.FAIL}  # fmt: skip
ADMIT_TRIES = 200  # configs a searcher draws for one trial before it runs the last (see StudySearch.suggest)
NEVER_RUN = "never run: the search stopped after the sampler drew it and before Ray recorded the trial"


def _storage(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path.resolve())))


def searcher(run: Run, sampler: optuna.samplers.BaseSampler, wandb: bool, admit=None,
             imported: Sequence[FrozenTrial] = (),
             priors: Sequence[tuple[int, dict]] = ()) -> "StudySearch":  # fmt: skip
    """A new search's searcher, on a new study in the run's folder (a study left there by a search that never got
    going is replaced, as the search replaces the rest of the folder). ``priors``: (index in the file's priors, point)
    of those to evaluate right after the baseline (tunelab.priors.points)."""
    run.study_file.unlink(missing_ok=True)
    if imported:  # earlier runs' trials (tunelab.warmstart) first: the study that OptunaSearch loads, then queues the
        # baseline in; with the directions OptunaSearch gives a new study
        directions: list[Literal["minimize", "maximize"]] = [
            "minimize" if m == "min" else "maximize" for m in run.spec.modes
        ]
        optuna.create_study(storage=_storage(run.study_file), study_name=run.name, directions=directions).add_trials(
            imported)  # fmt: skip
    return StudySearch(run, sampler, wandb, run.name, admit=admit, priors=priors)


def resumed_searcher(run: Run, sampler: optuna.samplers.BaseSampler, wandb: bool, admit=None) -> "StudySearch":
    """A resumed search's searcher, on the study in the run's folder (a missing or unreadable one is a UserError),
    whatever the folder's name now; Ray restores its saved state into it (``StudySearch.restore``)."""
    name = check(run.study_file, run.spec.argument).get_all_studies()[0].study_name
    return StudySearch(run, sampler, wandb, name, resumed=True, admit=admit)


class StudySearch(OptunaSearch):
    """Ray's ``OptunaSearch`` on the run's study file. It tags each trial it asks for with its Ray trial id (and
    W&B run id); results and ends are ``StudyWriter``'s, so the searcher's own reporting (every result as an
    intermediate value at Ray's iteration, the last result as the value, ASHA's stops as complete) is off."""

    def __init__(self, run: Run, sampler: optuna.samplers.BaseSampler, wandb: bool, name: str, resumed: bool = False,
                 admit: Callable[[dict], float] | None = None,
                 priors: Sequence[tuple[int, dict]] = ()):  # fmt: skip
        spec = run.spec
        first = spec.baseline if spec.method != "grid" and not resumed else None  # resumed: queued or tried
        multi = spec.multi_objective
        super().__init__(
            space=spec.params,
            metric=spec.metrics if multi else spec.metric,
            mode=spec.modes if multi else spec.mode,
            points_to_evaluate=[first] if first else None,
            sampler=sampler,
            study_name=name,
            storage=_storage(run.study_file),
        )
        self._wandb, self._admit = wandb, admit
        # a planned search goes on past its planned trials while its budget lasts (Plan.more_trials); Ray's time
        # budget counts from about the first suggestion. A resumed search runs only the trials planned.
        self._plan, self._stop_s = run.plan, 0.0 if resumed else spec.time_budget_s or 0.0
        self._clock: float | None = None
        self.queued: set[str] = set()  # Ray trial ids of queued configs (baseline, priors): ASHA lets them finish
        study = self._study
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(spec.metrics))  # the dashboard's names of the objectives
        about = {"experiment": spec.name, "trainable": spec.trainable_name, "dataset": spec.dataset,
                 "subset": run.options.subset, "max_epochs": spec.max_epochs}  # fmt: skip
        for key, value in about.items():
            study.set_user_attr(key, value)
        for index, point in priors:  # queued after the baseline (OptunaSearch queued it), marked for the dashboard
            study.enqueue_trial(point, user_attrs={"prior": index})

    @property
    def _study(self) -> optuna.Study:
        """The searcher's study: OptunaSearch types it as None, its value until its setup (which __init__ ran)."""
        return cast(optuna.Study, self._ot_study)

    def suggest(self, trial_id: str) -> dict | None:
        """The next config. Where ``admit`` (a planned search's tunelab.calibrate.Ceiling) refuses a sampled one,
        it stays in the study as FAIL (never run) with the status ``not tried`` and a note, and the sampler draws
        again; the last of ADMIT_TRIES draws runs whatever it costs. TPE leaves failed trials out of its model: the
        refused would otherwise be all it knows before the first trial ends, and it would sample beside them.
        A queued config (the baseline, a prior) is always tried (a prior that ``admit`` refuses is not queued:
        tunelab.priors), and its trial id goes into ``queued``. A planned search ends (FINISHED) once its plan
        starts no more trials."""
        if self._plan and trial_id not in self._ot_trials:
            self._clock = self._clock or time.monotonic()
            if not self._plan.more_trials(len(self._ot_trials), self._stop_s - (time.monotonic() - self._clock)):
                return self.FINISHED  # type: ignore[return-value]  # a str: Ray's own annotation leaves it out
        for attempt in range(ADMIT_TRIES):
            new = trial_id not in self._ot_trials
            config = super().suggest(trial_id)
            if not new or trial_id not in self._ot_trials or config is None:
                return config
            trial = self._ot_trials[trial_id]
            queued = "fixed_params" in self._study.get_trials(deepcopy=False)[trial.number].system_attrs
            over = 0.0 if queued or self._admit is None else self._admit(config) - 1
            if over <= 0 or attempt == ADMIT_TRIES - 1:
                break
            note = f"not tried: about {1 + over:.1f}x the cost of the costliest config whose retrain fits its budget"
            for key, value in {"status": "not tried", "note": note}.items():
                trial.set_user_attr(key, value)
            self._study.tell(trial, state=TrialState.FAIL)
            del self._ot_trials[trial_id]
        trial.set_user_attr("ray_trial_id", trial_id)
        if self._wandb:
            trial.set_user_attr("wandb_run_id", tracking.trial_run_id(trial_id))
        if queued:
            self.queued.add(trial_id)
        return config

    def restore(self, checkpoint_path: str) -> None:
        """Ray's saved searcher (the sampler's state, the trials it asked for) on this searcher's study file and W&B
        mode: the saved one holds the file's path where the search started (a renamed or copied run's is another)."""
        study, wandb, admit, stop_s = self._study, self._wandb, self._admit, self._stop_s
        super().restore(checkpoint_path)
        self._ot_study = study  # type: ignore[assignment]  # typed None by OptunaSearch (see _study)
        self._storage, self._wandb, self._admit = study._storage, wandb, admit
        self._stop_s, self._clock = stop_s, None
        for trial in self._ot_trials.values():
            trial.study, trial.storage = study, study._storage

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        pass  # StudyWriter.on_trial_result

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass  # StudyWriter.on_trial_complete, on_trial_error; settle


class _Study:
    """The one study of a file, through the storage's public API (trials by Ray trial id)."""

    def __init__(self, path: Path):
        self.storage = _storage(path)
        self.id = self.storage.get_study_id_from_name(self.storage.get_all_studies()[0].study_name)
        self.directions = self.storage.get_study_directions(self.id)
        self._numbers: dict[str, int] = {}

    def trials(self) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.id, deepcopy=False)

    def trial(self, ray_trial_id: str) -> FrozenTrial | None:
        number = self._numbers.get(ray_trial_id)
        if number is None:
            self._numbers = {t.user_attrs["ray_trial_id"]: t.number for t in self.trials()
                             if "ray_trial_id" in t.user_attrs}  # fmt: skip
            number = self._numbers.get(ray_trial_id)
        return None if number is None else self.storage.get_trial(self._storage_id(number))

    def _storage_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.id, number)

    def report(self, trial: FrozenTrial, epoch: int, value: float) -> None:
        """An epoch's value (an epoch run again, by a trial resumed from an older checkpoint, replaces the first
        run's, as on the leaderboard)."""
        self.storage.set_trial_intermediate_value(self._storage_id(trial.number), epoch, value)

    def finish(self, trial: FrozenTrial, status: str, values: Sequence[float] | None, epochs: int, best_epoch: int,
               note: str | None = None) -> None:  # fmt: skip
        """End a running trial: ``status`` is the leaderboard's, ``values`` its value(s) (None or NaN: none)."""
        state = STATES[status]
        values = [float(v) for v in values] if values is not None else None
        if values is not None and (len(values) != len(self.directions) or not all(map(math.isfinite, values))):
            values = None
        if state == TrialState.COMPLETE and values is None:  # all its epochs, but no value to rank it by
            state, note = TrialState.FAIL, note or "it reported no finite value"
        if state == TrialState.FAIL:
            values = None
        attrs = {"status": status, "epochs": int(epochs), "best_epoch": int(best_epoch)}
        attrs |= {"note": note} if note else {}
        storage_id = self._storage_id(trial.number)
        for key, value in attrs.items():
            self.storage.set_trial_user_attr(storage_id, key, value)
        self.storage.set_trial_state_values(storage_id, state, values)


class StudyWriter(Callback):
    """Writes what happens to each trial into the run's study, as it happens (see the module's docstring)."""

    def __init__(self, run: Run):
        self.path = run.study_file.resolve()
        self.spec, self.metrics = run.spec, list(run.spec.metrics)
        self._study: _Study | None = None

    def __getstate__(self) -> dict:  # Ray saves its callbacks with the search's state; the open storage stays here
        return self.__dict__ | {"_study": None}

    @property
    def study(self) -> _Study:
        if self._study is None:
            self._study = _Study(self.path)
        return self._study

    def _running(self, trial) -> FrozenTrial | None:
        found = self.study.trial(trial.trial_id)
        return found if found is not None and found.state == TrialState.RUNNING else None

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value, epoch = result.get(self.metrics[0]), result.get("epoch")
        if self.spec.multi_objective or value is None or epoch is None or not math.isfinite(value):
            return
        found = self._running(trial)
        if found is not None:
            self.study.report(found, int(epoch), float(value))

    def on_trial_complete(self, iteration, trials, trial, **info):
        found = self._running(trial)
        if found is None:
            return
        result = trial.last_result or {}
        epochs, best_epoch = int(result.get("epoch", 0)), int(result.get("best_epoch", 0))
        # the metrics of the best epoch the trial reported (tunelab.trial.is_new_best), as on the leaderboard: the last
        # result's where that is the best (with several objectives, always), else the study's value of that epoch (one
        # objective: the study has the trial's every epoch)
        if best_epoch == epochs:
            values = [result.get(m, math.nan) for m in self.metrics]
        else:
            values = [found.intermediate_values.get(best_epoch, math.nan)]
        status = leaderboard.end_status(self.spec, epochs)
        self.study.finish(found, status, values, epochs, best_epoch)

    def on_trial_error(self, iteration, trials, trial, **info):
        found = self._running(trial)
        if found is not None:
            result = trial.last_result or {}
            self.study.finish(found, "failed", None, result.get("epoch", 0), result.get("best_epoch", 0))


def settle(run: Run, board: pd.DataFrame) -> None:
    """At the end of a search: end the study's running trials that the leaderboard (Ray's saved state) has ended,
    with its values (trials a time budget stopped: Ray tells no one), and fail those Ray never recorded. Interrupted
    trials stay running: resume continues them."""
    if not run.study_file.is_file():  # a run searched before tunelab kept its study
        return
    study = _Study(run.study_file)
    rows = {str(row["trial_id"]): row for _, row in board.iterrows()} if len(board) else {}
    for trial in study.trials():
        if trial.state != TrialState.RUNNING:
            continue
        row = rows.get(trial.user_attrs.get("ray_trial_id", ""))
        if row is None:
            study.finish(trial, "failed", None, 0, 0, note=NEVER_RUN)
        elif row["status"] in STATES:
            values = [row[m] for m in run.spec.metrics]
            study.finish(trial, row["status"], values, row["epochs"], row["best_epoch"])


def open_study(run: Run) -> optuna.Study:
    """The run's study, to read (a missing or unreadable file is a UserError that says so)."""
    storage = check(run.study_file, run.spec.argument)
    return optuna.load_study(study_name=storage.get_all_studies()[0].study_name, storage=storage)


def check(path: Path, experiment: str | None = None) -> JournalStorage:
    """The storage of a run's study file, read through once: a missing file, or one that is no Optuna journal or
    holds no study, is a UserError naming it and how to get one."""
    run = path.parent.name
    again = f"`tunelab search {experiment or 'EXPERIMENT'} --name {run}-2`"
    if not path.is_file():
        raise UserError(f"{path} does not exist: run {run!r} has no Optuna study. A search writes it as it runs "
                        f"(runs searched before tunelab kept their studies have none); search again to get one: "
                        f"{again}")  # fmt: skip
    try:
        storage = _storage(path)
        studies = storage.get_all_studies()
    except (ValueError, KeyError, TypeError, AssertionError, OSError) as e:
        raise UserError(
            f"{path} is not a readable Optuna study (an Optuna journal file): {type(e).__name__}: {e}. "
            f"`tunelab search` writes it; search again for a new one: {again}"
        ) from None
    if len(studies) != 1:
        raise UserError(f"{path} holds {len(studies)} studies, not the one study of run {run!r}: it is written by "
                        f"`tunelab search` (search again for a new one: {again})")  # fmt: skip
    return storage


def started_trials(path: Path) -> tuple[int, datetime.datetime | None]:
    """How many trials the study file at ``path`` holds, besides those a warm start imported and those queued but never
    asked for (the baseline, priors), and when the first started: (0, None) without one (or an empty one, left by a
    search that stopped as it began); one that cannot be read is ``check``'s UserError."""
    if not path.is_file() or not path.stat().st_size:
        return 0, None
    storage = check(path)
    study = optuna.load_study(study_name=storage.get_all_studies()[0].study_name, storage=storage)
    own = [t for t in study.get_trials(deepcopy=False)
           if "imported_from" not in t.user_attrs and t.state != TrialState.WAITING]  # fmt: skip
    return len(own), min((t.datetime_start for t in own if t.datetime_start), default=None)
