"""Warm start (``tunelab search --warm-start RUN ...``): earlier runs' trials become the first trials of a new run's
Optuna study, so that its TPE sampler starts from what they found instead of sampling its first trials at random.

This module owns which trials are imported and as what: it reads the earlier runs' studies (tunelab.store.study),
refuses a run of another trainable, data set or metric, drops trials outside the new space (one line says how many and
why) and rebuilds the rest on the new space's distributions (TPE models only trials whose distributions are the
space's). ``study.create`` puts them into the new study before the baseline is queued. Nothing else sees them: the
leaderboard lists the trials Ray ran (imported ones never ran in this run), Ray counts only its own trials against
``run_cap``, and ``tunelab resume`` reopens the study as it is, imports included, so nothing is imported twice.
Each carries the user attrs ``imported_from`` (the run) and ``imported_trial_id`` (its trial id on that run's
leaderboard), which the dashboard shows as columns of its trial table.

What TPE learns from them is what it learns from the new run's own trials (see tunelab.store.study):
- a trial that trained the new run's ``max_epochs`` (completed, or stopped no earlier) is COMPLETE with its value;
  past ``max_epochs`` its epochs are cut there and its value is the best epoch's up to there, as the new run's are;
- one that stopped earlier (ASHA, a time budget, a shorter run) is PRUNED with its per-epoch values. TPE ranks pruned
  trials after the completed ones, the deepest first, then by their last epoch's value: a stopped trial counts among
  the good ones only where too few completed. Imported as COMPLETE, its value after fewer epochs would be ranked
  among full trials' as if it were final.
- one stopped after its first epoch (ASHA's first rung) is left out, and the line on what is imported counts it:
  the first rung stops slow starters, the best configs among them, and one epoch's value tells too little to rank
  them (for that reason the planner gives trials of under 3 epochs no rungs). On bench/replay.py's recording (60
  seeds, the new search's budget 20 trials, ASHA's eta 3 then), importing them made a warm start slower than a cold
  one (1.42x its time to target); left out, 0.65x.
- failed, interrupted and queued trials are left out (TPE does not learn from failed trials, the others have no
  result), and so are ended ones without a value or an epoch (never run). With several objectives there are no
  per-epoch values: the recorded values are kept.
"""

from collections import Counter

import optuna
from optuna.trial import FrozenTrial, TrialState

from tunelab.errors import UserError
from tunelab.spec.rules import best_epoch_of
from tunelab.spec.spaces import Spec, allowed, contains
from tunelab.store import study
from tunelab.store.runs import StoredRun, open_run

SHORT = "stopped after their first epoch"  # left out (see the module's docstring)
LEARNS = ("bayes",)  # the methods whose sampler learns from earlier trials (TPE); random and grid do not


def check(run: StoredRun) -> list[StoredRun]:
    """The runs in ``run.options.warm_start`` (in the new run's results root), checked before anything runs: a run of
    another trainable, data set or metric, one without a readable study, or a search whose sampler does not learn
    is a UserError naming it."""
    names = list(dict.fromkeys(run.options.warm_start))
    if names and run.spec.method not in LEARNS:
        raise UserError(f"--warm-start teaches the sampler of a bayes search (Optuna's TPE); {run.spec.argument} has "
                        f"method: {run.spec.method}, whose sampler learns nothing from earlier trials")  # fmt: skip
    return [_source(run, name) for name in names]


def trials(run: StoredRun) -> list[FrozenTrial]:
    """The trials of the runs in ``run.options.warm_start`` to add to its new study, in order (``check``'s errors
    first); prints what it imports and a note on those dropped."""
    sources = check(run)
    if not sources:
        return []
    imported, dropped, counts = [], Counter[str](), {}
    for source in sources:
        kept, outside = rebuild(study.open_study(source).trials, source.spec, run.spec, source.name)
        counts[source.name] = len(kept)
        imported += kept
        dropped += outside
    runs = ", ".join(f"{n} ({c})" for n, c in counts.items())
    runs = f"run {sources[0].name}" if len(sources) == 1 else f"runs {runs}"
    short = dropped.pop(SHORT, 0)
    left = f" ({short} {SHORT}, left out: one epoch's value tells too little)" if short else ""
    print(f"Warm start: the sampler starts from {len(imported)} finished trial{'s' * (len(imported) != 1)} of "
          f"{runs}{left}", flush=True)  # fmt: skip
    if dropped:
        reasons = "; ".join(f"{why} ({n})" for why, n in dropped.most_common())
        print(f"Warm start: dropped {sum(dropped.values())} trials outside this search's space: {reasons}", flush=True)
    return imported


def rebuild(trials: list[FrozenTrial], source: Spec, spec: Spec, name: str) -> tuple[list[FrozenTrial], Counter]:
    """The ``trials`` of run ``name`` (searched with ``source``) that a search of ``spec`` learns from, rebuilt on its
    space, and why the others with a result were left out (reason: count): outside the space, or SHORT."""
    kept, dropped = [], Counter[str]()
    for trial in filter(_learned, trials):
        params, why = _params(source, spec, trial)
        if why:
            dropped[why] += 1
            continue
        rebuilt = _rebuilt(spec, trial, params, name)
        if rebuilt.state == TrialState.PRUNED and len(rebuilt.intermediate_values) == 1:
            dropped[SHORT] += 1
        else:
            kept.append(rebuilt)
    return kept, dropped


def _learned(trial: FrozenTrial) -> bool:
    """Whether the trial ran and ended with something TPE learns from (see the module's docstring)."""
    ended = trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
    return ended and (trial.values is not None or bool(trial.intermediate_values))


def _source(run: StoredRun, name: str) -> StoredRun:
    """The earlier run ``name``, refused (a UserError naming it) unless its trials measure what this search does."""
    try:
        if name == run.name:
            raise UserError("that is this search's own run; name earlier runs")
        source = open_run(name, run.dir.parent)
        new, old = run.spec, source.spec
        if (old.trainable, old.dataset) != (new.trainable, new.dataset):
            raise UserError(f"run {name} searched trainable {old.trainable_name!r} on data set {old.dataset!r}, this "
                            f"search trains {new.trainable_name!r} on {new.dataset!r}; a warm start takes runs of the "
                            f"same trainable and data set")  # fmt: skip
        if (old.metrics, old.modes) != (new.metrics, new.modes):
            raise UserError(f"run {name} optimised {_goal(old)}, this search optimises {_goal(new)}; a warm start "
                            f"takes runs that optimised the same metrics")  # fmt: skip
        study.check(source.study_file, old.argument)
    except UserError as e:
        raise UserError(f"--warm-start {name}: {e}") from None
    return source


def _goal(spec: Spec) -> str:
    return ", ".join(f"{m} ({mode})" for m, mode in zip(spec.metrics, spec.modes))


def _params(source: Spec, spec: Spec, trial: FrozenTrial) -> tuple[dict, str | None]:
    """The trial as a point of the new space (its searched values), or why it is none: its whole config must
    match, so a value the new run fixes (a constant, a default) must be the trial's too."""
    old, new = source.config(trial.params), spec.config({})  # new: searched keys too, at their defaults
    params = {}
    for key in new:
        if key == "epochs":  # the run's length, not a hyperparameter
            continue
        if key not in old:
            return {}, f"no value of {key}"
        value, distribution = old[key], spec.params.get(key)
        if distribution is None:
            if value != new[key]:
                return {}, f"{key} not {new[key]!r}, fixed here"
        elif not contains(distribution, key, value):
            return {}, f"{key} not {allowed(distribution)}"
        else:
            params[key] = value
    return params, None


def _rebuilt(spec: Spec, trial: FrozenTrial, params: dict, source: str) -> FrozenTrial:
    """The trial on the new space's distributions, as the new run would have recorded it (see the module's
    docstring)."""
    epochs = int(trial.user_attrs.get("epochs", max(trial.intermediate_values, default=0)))
    curve = {step: v for step, v in trial.intermediate_values.items() if step <= spec.max_epochs}
    values = trial.values
    if len(curve) < len(trial.intermediate_values) and curve:  # cut at max_epochs: the best epoch up to there
        values = [curve[best_epoch_of(spec, dict(sorted(curve.items())))]]
    state = TrialState.COMPLETE if epochs >= spec.max_epochs and values is not None else TrialState.PRUNED
    attrs = {"imported_from": source, "imported_trial_id": str(trial.user_attrs.get("ray_trial_id", trial.number))}
    return optuna.trial.create_trial(state=state, values=values, params=params, distributions=spec.params,
                                     intermediate_values=curve, user_attrs=attrs)  # fmt: skip
