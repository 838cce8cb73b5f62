"""A run's Optuna study on disk (``results/<run>/study.log``): the record of its trials, written by
tunelab.engine.record (the one writer) and read by the leaderboard, the report, the dashboard and a warm start.

The file is an Optuna journal (``JournalStorage`` on a ``JournalFileBackend``), not SQLite: it is a log of
operations, one JSON line each, appended as the search goes, so optuna-dashboard (``tunelab dashboard``) can read
it while the search writes it (a reader takes no lock and ignores a line still being written), it works on file
systems where SQLite's locks do not (NFS), it needs no database schema, and a copy taken mid-search (``ray
rsync-down``) is readable up to its last whole line.

It holds one study, named after the run that started it (a renamed or copied run's keeps that name). The search's
sampler draws from it (tunelab.engine.record.StudySearch), so what the sampler learned from is what the dashboard shows,
and ``tunelab resume`` continues the same study. Each trial has its sampled values (params, the trial's config); its
metric per epoch as intermediate values, step = epoch (the learning curve; with several objectives none, Optuna's
intermediate values and its TPE's use of them are for one objective); user attrs ``ray_trial_id``, ``wandb_run_id``
(where W&B is on), ``prior`` (a prior's, its index in the file's ``priors:``, tunelab.engine.priors), ``epoch N`` (every
metric the trial reported for epoch N), ``epochs`` and ``best_epoch`` (so far), and once it ends ``status`` (the
leaderboard's word); and a state with the value(s) of its best epoch (tunelab.spec.rules):

- COMPLETE: it trained all ``max_epochs`` epochs;
- PRUNED: ASHA (or Pareto-layer ASHA) stopped it earlier, or the search's time budget did; its value(s) are those
  its best epoch reached (Optuna's own pruning would give it its last epoch's value instead). A stopped trial still
  teaches the sampler: TPE ranks pruned trials after the completed ones, the deepest first, then by their last
  epoch's intermediate value (its ``_split_pruned_trials``), so a trial stopped at a later rung with a good value
  counts among the good ones where too few trials completed, as BOHB's models of lower budgets do;
- FAIL with the status ``not tried``: the searcher drew it but a planned search's retrain budget rules it out; Ray
  never runs it and the leaderboard does not list it;
- FAIL with the status ``never run``: the search stopped after the sampler drew it but before Ray recorded it;
- FAIL: it failed after its retries (no value, as Optuna keeps none for a failed trial; its epochs stay);
- RUNNING: it is running, or the search was interrupted (Ctrl-C) and ``tunelab resume`` continues it;
- WAITING: a queued config (the baseline, a prior) that the searcher has not asked for yet.

Trials a warm start imported (tunelab.engine.warmstart) carry ``imported_from``; they never ran in this run.
"""

import datetime
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from tunelab.errors import UserError
from tunelab.store.runs import StoredRun

# a trial's status -> its state; "interrupted" and "pending" stay RUNNING (resume continues them)
STATES = {"completed": TrialState.COMPLETE, "stopped early": TrialState.PRUNED,
          "cut by the time budget": TrialState.PRUNED, "failed": TrialState.FAIL}  # fmt: skip
NOT_RUN = ("not tried", "never run")  # the statuses of trials the sampler drew and Ray never ran
NEVER_RUN = "never run: the search stopped after the sampler drew it and before Ray recorded the trial"
EPOCH = re.compile(r"epoch (\d+)")  # the user attr of an epoch's metrics


def _storage(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path.resolve())))


def create(run: StoredRun, imported: Sequence[FrozenTrial] = ()) -> None:
    """A new search's study in the run's folder (a study left there by a search that never got going is replaced, as
    the search replaces the rest of the folder), with the ``imported`` trials of earlier runs first
    (tunelab.engine.warmstart), the names of its objectives (the dashboard's) and what it searched."""
    run.study_file.unlink(missing_ok=True)
    spec = run.spec
    directions: list[Literal["minimize", "maximize"]] = ["minimize" if m == "min" else "maximize" for m in spec.modes]
    study = optuna.create_study(storage=_storage(run.study_file), study_name=run.name, directions=directions)
    study.add_trials(imported)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(spec.metrics))
    about = {"experiment": spec.name, "trainable": spec.trainable_name, "dataset": spec.dataset,
             "subset": run.options.subset, "max_epochs": spec.max_epochs}  # fmt: skip
    for key, value in about.items():
        study.set_user_attr(key, value)


class Study:
    """The one study of a file, through the storage's public API, as tunelab.engine.record writes it (trials by Ray
    trial id)."""

    def __init__(self, path: Path, metrics: Sequence[str]):
        self.storage, self.metrics = _storage(path), list(metrics)
        self.id = self.storage.get_study_id_from_name(self.storage.get_all_studies()[0].study_name)
        self._numbers: dict[str, int] = {}

    def trials(self) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.id, deepcopy=False)

    def running(self, ray_trial_id: str) -> FrozenTrial | None:
        """The running trial of that Ray trial id, or None (none, or it ended)."""
        number = self._numbers.get(ray_trial_id)
        if number is None:
            self._numbers = {t.user_attrs["ray_trial_id"]: t.number for t in self.trials()
                             if "ray_trial_id" in t.user_attrs}  # fmt: skip
            number = self._numbers.get(ray_trial_id)
        if number is None:
            return None
        trial = self.storage.get_trial(self._storage_id(number))
        return trial if trial.state == TrialState.RUNNING else None

    def _storage_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.id, number)

    def record_epoch(self, trial: FrozenTrial, metrics: dict) -> None:
        """An epoch's metrics (with its ``epoch`` and the trial's ``best_epoch``; an epoch run again, by a trial resumed
        from an older checkpoint, replaces the first run's), and with one objective its value as the intermediate
        value of that step."""
        storage_id, epoch = self._storage_id(trial.number), int(metrics["epoch"])
        attrs = {f"epoch {epoch}": metrics, "epochs": epoch, "best_epoch": int(metrics.get("best_epoch", epoch))}
        for key, value in attrs.items():
            self.storage.set_trial_user_attr(storage_id, key, value)
        value = metrics.get(self.metrics[0]) if len(self.metrics) == 1 else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            self.storage.set_trial_intermediate_value(storage_id, epoch, float(value))

    def finish(self, trial: FrozenTrial, status: str, note: str | None = None) -> None:
        """End a running trial with ``status`` (STATES' keys, or NOT_RUN's) and its best epoch's value(s)."""
        state = STATES.get(status, TrialState.FAIL)
        best = epochs(trial).get(int(trial.user_attrs.get("best_epoch", 0)), {})
        values: list[float] | None = [best.get(m, math.nan) for m in self.metrics]
        if not values or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            values = None
        if state == TrialState.COMPLETE and values is None:  # all its epochs, but no value to rank it by
            state, note = TrialState.FAIL, note or "it reported no finite value"
        storage_id = self._storage_id(trial.number)
        for key, value in ({"status": status} | ({"note": note} if note else {})).items():
            self.storage.set_trial_user_attr(storage_id, key, value)
        self.storage.set_trial_state_values(storage_id, state, None if state == TrialState.FAIL else values)

    def fail_unrecorded(self, recorded: set[str]) -> None:
        """Fail the running trials whose Ray trial id is not in ``recorded`` (Ray never recorded them)."""
        for trial in self.trials():
            if trial.state == TrialState.RUNNING and trial.user_attrs.get("ray_trial_id") not in recorded:
                self.finish(trial, "never run", NEVER_RUN)


def epochs(trial: FrozenTrial) -> dict[int, dict]:
    """A trial's metrics by epoch, in epoch order."""
    found = {int(m[1]): v for k, v in trial.user_attrs.items() if (m := EPOCH.fullmatch(k))}
    return dict(sorted(found.items()))


def ran(trial: FrozenTrial) -> bool:
    """Whether the trial is one of this run's that Ray ran or will run (not imported, drawn and refused, or queued)."""
    return ("ray_trial_id" in trial.user_attrs and "imported_from" not in trial.user_attrs
            and trial.user_attrs.get("status") not in NOT_RUN)  # fmt: skip


def open_study(run: StoredRun, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """The run's study, to read, or with a ``sampler`` to search (a missing or unreadable file is a UserError that
    says so)."""
    storage = check(run.study_file, run.spec.argument)
    return optuna.load_study(study_name=storage.get_all_studies()[0].study_name, storage=storage, sampler=sampler)


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
