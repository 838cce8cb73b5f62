"""The one writer of each trial's record: the run's Optuna study (tunelab.store.study says what it holds).

``StudySearch`` is the search's Ray searcher: it asks the study for each new trial (Optuna's ``ask``, so the sampler
draws it from what the study holds) and tags it with its Ray trial id. ``TrialRecord``, a Tune callback in the driver,
writes everything that happens to a trial after that, as it happens: each epoch's metrics, its best epoch (the
trial's, tunelab.spec.rules), its end and its value(s). The callback sees every trial, where a searcher would not (Ray's
``ConcurrencyLimiter`` stops passing the end of a trial to the searcher once a resumed search continues it), and
trials that Ray ends without telling anyone (a time budget's end) it ends at the step Ray ends them. The leaderboard,
the report, the dashboard and a warm start read the study; nothing reconciles it with Ray's files afterwards.

Each write goes straight to the storage: a stopped trial's value is the one its best epoch reached, which
``Study.tell`` does not allow (it takes the last intermediate value), and the samplers' ``after_trial`` hooks have
nothing to do here (TPE, random; grid's would stop a ``study.optimize`` loop, which Ray does not run).
"""

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import optuna
from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.search import Searcher

from tunelab import tracking
from tunelab.spec.rules import end_status
from tunelab.store import study
from tunelab.store.runs import StoredRun

ADMIT_TRIES = 200  # configs a searcher draws for one trial before it runs the last (see StudySearch.suggest)
# Ray's bookkeeping in a result; its clock (timestamp, time_total_s, time_this_iter_s) is recorded with the metrics
NOT_RECORDED = {"config", "done", "trial_id", "experiment_tag", "should_checkpoint", "checkpoint_dir_name", "date",
                "hostname", "node_ip", "pid", "time_since_restore", "iterations_since_restore", "timesteps_total",
                "timesteps_since_restore", "episodes_total"}  # fmt: skip


class StudySearch(Searcher):
    """Ray's searcher on the run's study: a new search's (``resumed=False``: the study that ``study.create`` made, the
    baseline and the ``priors`` (index in the file's priors, point) queued first) or a resumed one's (the study as it
    is: its queued configs not yet asked for stay queued). ``admit``: a planned search's check of a config's cost
    (tunelab.engine.calibrate.Ceiling)."""

    def __init__(self, run: StoredRun, sampler: optuna.samplers.BaseSampler, wandb: bool, resumed: bool = False,
                 admit: Callable[[dict], float] | None = None,
                 priors: Sequence[tuple[int, dict]] = ()):  # fmt: skip
        super().__init__()  # no metric or mode: the searcher reads no result (TrialRecord writes them)
        spec = run.spec
        self._study = study.open_study(run, sampler)
        self._space, self._wandb, self._admit = spec.params, wandb, admit
        # a planned search goes on past its planned trials while its budget lasts (Plan.more_trials); Ray's time
        # budget counts from about the first suggestion. A resumed search runs only the trials planned.
        self._plan, self._stop_s = run.plan, 0.0 if resumed else spec.time_budget_s or 0.0
        self._clock: float | None = None
        self._asked = sum(map(study.ran, self._study.get_trials(deepcopy=False)))  # a resumed search's so far
        if not resumed:
            if spec.baseline and spec.method != "grid":
                self._study.enqueue_trial(spec.baseline)
            for index, point in priors:  # marked for the dashboard
                self._study.enqueue_trial(point, user_attrs={"prior": index})
        waiting = self._study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        self._queued_numbers = {t.number for t in waiting}
        self.queued: set[str] = set()  # Ray trial ids of queued configs (baseline, priors): ASHA lets them finish

    def __getstate__(self) -> dict:  # Ray saves the searcher with the search; the study stays here (resume opens it)
        return self.__dict__ | {"_study": None}

    def set_search_properties(self, metric, mode, config: dict, **spec) -> bool:
        return True  # the space is the spec's; Ray's metric and mode are the record's business

    def suggest(self, trial_id: str) -> dict | None:
        """The next config. Where ``admit`` refuses a sampled one, it stays in the study as FAIL (never run) with the
        status ``not tried`` and a note, and the sampler draws again; the last of ADMIT_TRIES draws runs whatever it
        costs. TPE leaves failed trials out of its model: the refused would otherwise be all it knows before the first
        trial ends, and it would sample beside them. A queued config (the baseline, a prior) is always tried (a prior
        that ``admit`` refuses is not queued: tunelab.engine.priors), and its trial id goes into ``queued``. A planned
        search ends (FINISHED) once its plan starts no more trials."""
        if self._plan:
            self._clock = self._clock or time.monotonic()
            if not self._plan.more_trials(self._asked, self._stop_s - (time.monotonic() - self._clock)):
                return self.FINISHED  # type: ignore[return-value]  # a str: Ray's own annotation leaves it out
        for attempt in range(ADMIT_TRIES):
            trial = self._study.ask(self._space)
            queued = trial.number in self._queued_numbers
            over = 0.0 if queued or self._admit is None else self._admit(trial.params) - 1
            if over <= 0 or attempt == ADMIT_TRIES - 1:
                break
            note = f"not tried: about {1 + over:.2f}x the cost of the costliest config whose retrain fits its budget"
            for key, value in {"status": "not tried", "note": note}.items():
                trial.set_user_attr(key, value)
            self._study.tell(trial, state=TrialState.FAIL)
        trial.set_user_attr("ray_trial_id", trial_id)
        if self._wandb:
            trial.set_user_attr("wandb_run_id", tracking.trial_run_id(trial_id))
        if queued:
            self.queued.add(trial_id)
        self._asked += 1
        return dict(trial.params)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Nothing to learn here: the sampler reads the study, which TrialRecord writes."""

    def save(self, checkpoint_path: str) -> None:
        """What Ray saves of the searcher: the study's name (the sampler's history is the study itself)."""
        Path(checkpoint_path).write_text(json.dumps({"study": self._study.study_name}))

    def restore(self, checkpoint_path: str) -> None:
        """A resumed search's searcher opened the study in the run's folder already (``resumed=True``)."""


class Pressed(Protocol):
    pressed: bool  # whether Ctrl-C stopped the search (tunelab.engine.search.CtrlC)


class TrialRecord(Callback):
    """Writes what happens to each trial into the run's study, as it happens (see the module's docstring)."""

    def __init__(self, run: StoredRun, ctrl_c: Pressed):
        self.path, self.spec, self.ctrl_c = run.study_file.resolve(), run.spec, ctrl_c
        self._study: study.Study | None = None
        self._ended: set[str] = set()  # Ray trial ids whose end is written

    def __getstate__(self) -> dict:  # Ray saves its callbacks with the search's state; the open storage stays here
        return self.__dict__ | {"_study": None}

    @property
    def study(self) -> "study.Study":
        if self._study is None:
            self._study = study.Study(self.path, self.spec.metrics)
        return self._study

    def on_trial_result(self, iteration, trials, trial, result, **info):
        found = self.study.running(trial.trial_id)
        if found is None or "epoch" not in result:
            return
        metrics = {k: _plain(v) for k, v in result.items() if k not in NOT_RECORDED}
        self.study.record_epoch(found, {k: v for k, v in metrics.items() if v is not None})

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial.trial_id, failed=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial.trial_id, failed=True)

    def on_step_end(self, iteration, trials, **info):
        """Ray ends the running trials at a time budget's end without a call to anyone: they end here."""
        for trial in trials:
            if trial.status == "TERMINATED" and trial.trial_id not in self._ended:
                self._end(trial.trial_id, failed=False)

    def on_experiment_end(self, trials, **info):
        """Trials the sampler drew that Ray never recorded (the search stopped in between) can never run: they fail.
        Ray ends the running trials here whatever stopped the search: after Ctrl-C, or an error in the search (Ray
        calls this while it handles the error), they stay running, as resume continues them; else they end here."""
        self.study.fail_unrecorded({t.trial_id for t in trials})
        if not self.ctrl_c.pressed and sys.exc_info()[0] is None:
            self.on_step_end(0, trials)

    def _end(self, trial_id: str, failed: bool) -> None:
        self._ended.add(trial_id)
        found = self.study.running(trial_id)
        if found is None:
            return
        if failed:
            self.study.finish(found, "failed")
        else:
            self.study.finish(found, end_status(self.spec, int(found.user_attrs.get("epochs", 0))))


def _plain(value):
    """A result's value as JSON keeps it (numbers, strings, flags), or None."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return value  # NaN and infinities: JSON's extension that Optuna's journal reads back
    return value if isinstance(value, (bool, int, float, str)) else None
