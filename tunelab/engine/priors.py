"""Priors (a search-space file's ``priors:``): configs that did well in earlier searches of the experiment (for the
built-in ones, tunelab's own recorded searches on another seed or data subset), evaluated first, right after the
baseline, so that a short search starts from what is known instead of from random samples.

tunelab.spec.spaces checks each prior against the trainable when it reads the file (its hyperparameters, their types,
RANGES and CHOICES). This module decides, when a search starts, which are queued: a prior is a partial config, made
complete as the baseline is (the space's defaults for the searched hyperparameters it leaves out), and it is skipped
where it falls outside this search's space (a value outside a distribution's range or choices, a fixed value it
differs from: a narrowed or edited file) or where a planned search's ceiling (tunelab.engine.calibrate.Ceiling) would
not try it; one line says which were skipped and why, one how many are evaluated. ``tunelab.store.study.StudySearch``
queues them in the study after the baseline, each marked with the user attr ``prior`` (its index in the file's list),
which the dashboard shows as a column. A grid search evaluates its own points and no priors; ``--no-priors``
(``Options.no_priors``, saved with the run) turns them off; ``tunelab resume`` never queues them again (the study
has them queued or tried), as it does not the baseline. They are the search's own trials: they count in ``--trials``
(those beyond it are left out) and are on the leaderboard like any other."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab.spec.spaces import PRIOR_FROM, SPACES_DIR, Spec, allowed, contains
from tunelab.store.runs import StoredRun


def points(run: StoredRun, admit: Callable[[dict], float] | None = None) -> list[tuple[int, dict]]:
    """The priors a new search evaluates after its baseline, in the file's order: (index in the file's ``priors``,
    complete point of the space). ``admit``: a planned search's ceiling (tunelab.engine.calibrate.Ceiling: a config's
    FLOPs over the most its retrain budget allows; above 1 it is not tried). Prints one line on those skipped (outside
    the space, or over the ceiling), one on those evaluated, and one on those left out because the trial cap or the
    plan (a time budget that cannot train them all at full length) holds fewer; nothing without priors or with
    --no-priors."""
    spec = run.spec
    if not spec.priors or run.options.no_priors:
        return []
    where = f"{_shown(spec)}: priors"
    if spec.method == "grid":
        print(f"Priors: not used by a grid search, which evaluates its own points ({len(spec.priors)} in {where})",
              flush=True)  # fmt: skip
        return []
    queued, skipped, costly = [], [], False
    for index, prior in enumerate(spec.priors):
        point, why = _point(spec, prior)
        if why is None and admit is not None and (over := admit(point)) > 1:
            why, costly = f"about {over:.2f}x the cost of the costliest config whose retrain fits its budget", True
        if why:
            skipped.append(f"priors[{index}] ({why})")
        else:
            queued.append((index, point))
    if skipped:
        which = "that this search does not try" if costly else "outside this search's space"
        print(f"Priors: skipped {len(skipped)} of {len(spec.priors)} {which}: {'; '.join(skipped)}", flush=True)
    room = max(0, spec.run_cap - (1 if spec.baseline else 0))
    why_not = f"beyond its {spec.run_cap} trials"
    if run.plan and run.plan.queued - run.plan.baseline < room:  # the plan's budget fits fewer at full length
        room, why_not = max(0, run.plan.queued - run.plan.baseline), "that its time budget cannot train at full length"
    left_out = len(queued) - room
    queued = queued[:room]
    if left_out > 0 and not queued:
        print(f"Priors: left out all {left_out}, {why_not}", flush=True)
    if queued:
        origin = "that did well in tunelab's own searches" if _built_in(spec) else "listed in the file"
        more = f", {left_out} more {why_not} are left out" if left_out > 0 else ""
        print(f"Priors: evaluating {len(queued)} config{'s' if len(queued) != 1 else ''} {origin} first "
              f"({where}{more}); --no-priors turns them off", flush=True)  # fmt: skip
    return queued


def inside(spec: Spec) -> list[dict]:
    """The points of the file's priors that fall inside ``spec``'s space, in the file's order, without a word: those
    that ``points`` queues before a ceiling and the trial cap have their say (none for a grid). A planned search
    counts them in its cost (tunelab.engine.calibrate.plan_for)."""
    if spec.method == "grid":
        return []
    return [point for point, why in (_point(spec, prior) for prior in spec.priors) if why is None]


def _point(spec: Spec, prior: dict[str, Any]) -> tuple[dict, str | None]:
    """The prior as a point of the space (its searched values, the space's defaults for those it leaves out), or why it
    is outside the space."""
    fixed = spec.config({})  # the defaults and the file's constants (searched ones at their defaults)
    values = {k: v for k, v in prior.items() if k != PRIOR_FROM}
    for key, value in values.items():
        distribution = spec.params.get(key)
        if distribution is None and value != fixed.get(key):
            return {}, f"{key} {value!r}, fixed at {fixed.get(key)!r} here"
        if distribution is not None and not contains(distribution, key, value):
            return {}, f"{key} {value!r} not {allowed(distribution)}"
    point = {key: values.get(key, fixed.get(key)) for key in spec.params}
    for key, value in point.items():
        if key not in values and not contains(spec.params[key], key, value):
            return {}, f"it leaves {key} at the default {value!r}, not {allowed(spec.params[key])}"
    return point, None


def _built_in(spec: Spec) -> bool:
    return spec.path.resolve().parent == SPACES_DIR


def _shown(spec: Spec) -> str:
    """The file of the priors as people see it: search_spaces/<name>.yaml for a built-in experiment, else its path
    (relative to the current folder where it is under it)."""
    if _built_in(spec):
        return f"search_spaces/{spec.path.name}"
    try:
        return str(spec.path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(spec.path)
