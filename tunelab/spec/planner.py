"""The plan of a search from the user's time budget: how many trials, how many epochs each, ASHA's rungs, the
fraction of the data, how many trials at once, and how long the retrain of the best config will take.

Pure: no torch, no Ray. ``make_plan`` takes the epoch times that tunelab.engine.calibrate measured (or a replay's
recorded ones, bench/) and returns a ``Plan``; tunelab.engine.calibrate applies it to a run.

The cost model (``search_s``): every trial trains to the first rung, ASHA lets about 1/eta of them go on to the
next (``promoted``: Ray's ASHA compares each trial with those that reached the rung before it, so the first few go
on more often), and so on up to max_epochs. An epoch of a trial costs ``subset`` times its epoch on the whole
training set (training and validation, both cut to the fraction) plus a fixed cost to report and checkpoint it;
each trial also costs a fixed start. ``concurrency`` trials run at once: each stage takes as many waves as it has
trials over the concurrency, rounded up, each as long as its slowest trial's epochs.

The configs queued first (the spec's baseline, then the file's priors: tunelab.engine.priors) are trials too, but ASHA
lets them train all max_epochs epochs (tunelab.engine.search's _QueuedFinish), each at its own epoch (its cost, on the
line through calibration's corners): they are in every stage, in its first waves, and since they reach each rung first,
the sampled trials' chances there are those of the records after theirs. The plan's trials count them; the sampled
trials (TARGET_TRIALS, MIN_TRIALS) are planned around them.
"""

import bisect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from tunelab.spec.spaces import asha_rungs

# ASHA's reduction factor: rungs at 1, 2, 4, 8 ... epochs, the top half of a rung going on. Measured on
# bench/replay.py's recording (60 seeds): the few configs that reach the best values start slower, ranking at the
# 72-79th percentile after one epoch, and eta 3 (the top third) stopped them: 0.76x random search's time to its
# result at a budget of 20 trials, where eta 2 took 0.50x.
ETA = 2
TARGET_TRIALS = 20  # enough trials for TPE to learn from (its first ones sample at random)
MIN_TRIALS = 6  # fewer than this is hardly a search: epochs go before trials do
MAX_TRIALS = 200  # a search that even this many trials leave short of its budget ends early
SUBSETS = (1.0, 0.75, 0.5, 0.3, 0.2, 0.15, 0.1)  # data fractions, most data first; 0.1 is the floor
START_S = 15.0  # Ray's start before the first trial
TRIAL_START_S = 1.0  # Ray's own cost per trial (its folder, its first result), beyond building the model
EPOCH_REPORT_S = 0.2  # per epoch: reporting the metrics and writing the checkpoint
MARGIN = 0.05  # the share of the budget left unplanned: estimates err, and Ray's budget stops the search hard
FLAGS = {"trials": "--trials", "max_epochs": "--max-epochs", "subset": "--subset", "concurrency": "--concurrency"}


@dataclass
class Plan:
    """A planned search and the retrain after it (times in seconds)."""

    trials: int  # the queued configs included
    max_epochs: int
    rungs: list[int]  # the epochs at which ASHA compares trials (none: every trial trains max_epochs epochs)
    eta: int
    subset: float  # the fraction of the training (and validation) set that the trials train on
    concurrency: int
    expected_s: float  # calibration, Ray's start and the trials
    calibration_s: float
    retrain_epochs: int
    retrain_expected_s: float  # one seed of the best config on the whole data
    budget_s: float
    epoch_s: float = 0.0  # a trial's expected epoch at ``subset``
    trial_start_s: float = 0.0  # a trial's own start, beyond Ray's (building its model)
    fixed: dict = field(default_factory=dict)  # what the user's flags set (FLAGS' keys): kept as given
    retrain_budget_s: float | None = None  # the most one seed's retrain may take (None: no limit)
    # The costliest config the search tries, so that its retrain fits retrain_budget_s: an epoch on the whole
    # training set (max_epoch_s) and, as tunelab.engine.calibrate measures a config, FLOPs per example (max_flops).
    # None: every config fits.
    max_epoch_s: float | None = None
    max_flops: float | None = None
    cost_unit: str = "flops"  # what max_flops counts: "s" where calibration could not count FLOPs (its seconds)
    retrain_speedup: float = 1.0  # a trial's epoch over the retrain's (train+validation, with every CPU thread)
    queued: int = 0  # of the trials, the configs queued first, which train all max_epochs epochs
    baseline: bool = False  # whether the first of them is the baseline (the others are priors)

    def lines(self) -> list[str]:
        """The two lines printed before the first trial."""
        if self.rungs:
            epochs = f"rungs at {'/'.join(map(str, self.rungs))} of {self.max_epochs} epochs"
        else:
            epochs = f"{_epochs(self.max_epochs)} each, no early stopping"
        unit, expected = _unit(self.budget_s), _unit(self.expected_s)
        over = ": over the budget, which stops the search" if self.expected_s > self.budget_s else ""
        kept = ", ".join(f"{FLAGS[k]} {v:g}" for k, v in self.fixed.items())
        more = "" if "trials" in self.fixed else " (more if time is left)"
        return [
            f"Plan: {self._queued()}{self.trials - self.queued} trials{more}, {epochs}, on {_fraction(self.subset)}, "
            f"{self.concurrency} at a time; "
            f"expected {_in(self.expected_s, expected)} of {_in(self.budget_s, unit, expected != unit)}{over} "
            f"(calibration {self.calibration_s:.0f} s)." + (f" Kept from the command line: {kept}." if kept else ""),
            f"Retrain of the best config: {_epochs(self.retrain_epochs)} on the whole training set, about "
            f"{readable(self.retrain_expected_s)} per seed{self._ceiling()}.",
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # IPython and Jupyter show the two lines
        printer.text(str(self))

    def _queued(self) -> str:
        """The configs queued first, as the plan's first line counts them ("5 queued (baseline, 4 priors) + ")."""
        if not self.queued:
            return ""
        priors = self.queued - self.baseline
        which = ["baseline"] * self.baseline + [f"{priors} prior{'s' if priors > 1 else ''}"] * (priors > 0)
        return f"{self.queued} queued ({', '.join(which)}) + "

    def _ceiling(self) -> str:
        budget = self.retrain_budget_s
        if self.max_flops is None or self.max_epoch_s is None:  # calibrate sets both or neither
            if budget and self.retrain_expected_s > budget * 1.01:  # calibration found no line to cap configs on
                return (f"; over the retrain budget of {readable(budget)}, and this space's configs do not "
                        "cost in proportion to their FLOPs, so the search cannot skip the costly ones")  # fmt: skip
            return ""
        most = self.retrain_epochs * self.max_epoch_s / self.retrain_speedup
        if self.retrain_budget_s and most > self.retrain_budget_s * 1.01:
            return (f"; even the space's cheapest config takes about {readable(most)}, over the retrain "
                    f"budget of {readable(self.retrain_budget_s)}: the search tries only "
                    "configs as cheap as it")  # fmt: skip
        return f", at most {readable(most)}: the search skips configs that would take longer"

    def first_rung_s(self) -> float:
        """A sampled trial's expected seconds until ASHA first judges it (until it ends, without rungs)."""
        epochs = self.rungs[0] if self.rungs else self.max_epochs
        return self.trial_start_s + TRIAL_START_S + epochs * self.epoch_s

    def more_trials(self, started: int, left_s: float) -> bool:
        """Whether a search that has ``started`` trials (the queued configs among them), with ``left_s`` seconds of
        its budget left, starts another: the planned ones always; beyond them (ASHA stopped more trials than the cost
        model expects, or they ran faster than calibrated) as long as another sampled trial reaches ASHA's first
        rung in the time left, so that the budget is spent rather than left (a grid's or the user's ``--trials`` are
        kept exactly)."""
        if started < self.trials:
            return True
        return "trials" not in self.fixed and started < MAX_TRIALS and left_s >= self.first_rung_s()

    def hard_stop_s(self, spent: float) -> float:
        """Ray's time budget once ``spent`` seconds of the user's went (calibration, Ray's start): the rest, and at
        least a tenth of the budget, so that a budget smaller than calibration still runs a trial."""
        return max(self.budget_s - spent, 0.1 * self.budget_s)

    def saved(self) -> dict:
        return asdict(self)

    @classmethod
    def restore(cls, saved: dict) -> "Plan":
        return cls(**saved)


def make_plan(
    budget_s: float, epoch_s_cheap: float, epoch_s_costly: float, overhead_s: float, slots: int,
    fixed: dict | None = None, space_max_epochs: int = 10, *, calibration_s: float = 0.0,
    epoch_s_mean: float | None = None, eta: int = ETA, start_s: float = START_S, margin: float = MARGIN,
    epoch_report_s: float = EPOCH_REPORT_S, retrain_budget_s: float | None = None, max_epoch_s: float | None = None,
    queued_epoch_s: Sequence[float] = (), baseline: bool = False, retrain_speedup: float = 1.0,
) -> Plan:  # fmt: skip
    """The plan that fits ``budget_s``.

    ``epoch_s_cheap`` and ``epoch_s_costly``: an epoch (training and validation) on the whole training set of the
    space's cheapest and costliest configs; a trial's expected epoch is ``epoch_s_mean`` where calibration knows
    it, else the mean of the two. ``overhead_s``: a trial's start (building its model). ``slots``: how many trials
    fit on the machine at once. ``fixed``: the user's values of FLAGS' keys, kept exactly. ``space_max_epochs``:
    the file's max_epochs, a ceiling. The trials may take the budget less calibration and Ray's start, less
    ``margin``. ``queued_epoch_s``: an epoch on the whole training set of each config queued first, in their order
    (the baseline first where ``baseline``, then the priors): trials that train all max_epochs epochs, counted in
    the plan's; ``fixed["trials"]`` keeps the first of them that it holds.

    Heuristics, in order: run as many trials at once as fit; keep the space's max_epochs, with ASHA's rungs at 1,
    eta, eta^2 ... epochs (none below 3 epochs: one epoch's value tells too little); take the largest data fraction
    (SUBSETS) at which the queued configs and TARGET_TRIALS sampled trials fit, with as many trials as fit there (up
    to MAX_TRIALS in all); below that, fewer sampled trials down to MIN_TRIALS, at the largest fraction that affords
    as many as the floor fraction does; below that, fewer queued priors (the last first; the baseline stays), so that
    a small budget runs its best-known configs at full length rather than every trial shorter; below that, fewer
    epochs. Where even the baseline and MIN_TRIALS trials of one epoch do not fit, that smallest plan is returned,
    expected over the budget.

    The retrain (``tunelab retrain``'s defaults for a planned run) trains the best config for max_epochs epochs on
    the whole data (train+validation), at a trial's expected epoch on the whole training set over
    ``retrain_speedup`` (the retrain has every CPU thread, a trial its own, and more data). ``max_epoch_s``: the
    costliest config's epoch (at a trial's threads) that the search tries (tunelab.engine.calibrate sets it from
    ``retrain_budget_s``; ``epoch_s_mean`` is then the mean of the configs it tries); the plan records both.
    """
    fixed = {k: v for k, v in (fixed or {}).items() if v is not None}
    unknown = set(fixed) - set(FLAGS)
    if unknown:
        raise ValueError(f"cannot fix {', '.join(sorted(unknown))}; a plan keeps {', '.join(FLAGS)}")
    epoch_full = (epoch_s_cheap + epoch_s_costly) / 2 if epoch_s_mean is None else epoch_s_mean
    available = max(budget_s - calibration_s - start_s, 0.0) * (1 - margin)
    subsets = [fixed["subset"]] if "subset" in fixed else list(SUBSETS)
    epochs = [fixed["max_epochs"]] if "max_epochs" in fixed else list(range(space_max_epochs, 0, -1))

    def cost(trials: int, max_epochs: int, subset: float, kept: int) -> float:
        concurrency = fixed.get("concurrency") or max(1, min(slots, trials))
        queued = [subset * e + epoch_report_s for e in queued_epoch_s[: min(kept, trials)]]
        return search_s(trials - len(queued), max_epochs, rungs_of(max_epochs, eta), eta,
                        subset * epoch_full + epoch_report_s, overhead_s, concurrency, queued)  # fmt: skip

    def trials_at(max_epochs: int, subset: float, kept: int) -> int:
        if "trials" in fixed:
            return fixed["trials"]
        # the cost grows with the trials: the last that fits, by bisection
        return bisect.bisect_right(range(1, MAX_TRIALS + 1), available,
                                   key=lambda n: cost(n, max_epochs, subset, kept))  # fmt: skip

    every, least = len(queued_epoch_s), min(len(queued_epoch_s), int(baseline))  # the baseline stays
    attempts = [(epochs[0], s, TARGET_TRIALS, every) for s in subsets] + [
        (e, subsets[-1], MIN_TRIALS, kept) for e in epochs for kept in range(every, least - 1, -1)]  # fmt: skip
    for max_epochs, subset, wanted, kept in attempts:
        trials = trials_at(max_epochs, subset, kept)
        if ("trials" in fixed or trials - kept >= wanted) and cost(trials, max_epochs, subset, kept) <= available:
            # less data only where it buys trials (it does not where a trial's start outweighs its epochs)
            subset = next(s for s in subsets if trials_at(max_epochs, s, kept) >= trials
                          and cost(trials, max_epochs, s, kept) <= available)  # fmt: skip
            break
    else:  # not even the smallest plan fits
        max_epochs, subset, kept = epochs[-1], subsets[-1], least
        trials = fixed.get("trials", min(least + MIN_TRIALS, MAX_TRIALS))
    concurrency = fixed.get("concurrency") or max(1, min(slots, trials))
    return Plan(
        trials=trials, max_epochs=max_epochs, rungs=rungs_of(max_epochs, eta), eta=eta, subset=subset,
        concurrency=concurrency, expected_s=calibration_s + start_s + cost(trials, max_epochs, subset, kept),
        calibration_s=calibration_s, retrain_epochs=max_epochs,
        retrain_expected_s=max_epochs * epoch_full / retrain_speedup,
        budget_s=budget_s, epoch_s=subset * epoch_full + epoch_report_s, trial_start_s=overhead_s, fixed=fixed,
        retrain_budget_s=retrain_budget_s, max_epoch_s=max_epoch_s, queued=min(kept, trials),
        baseline=baseline, retrain_speedup=retrain_speedup,
    )  # fmt: skip


def rungs_of(max_epochs: int, eta: int = ETA) -> list[int]:
    """ASHA's rungs for ``max_epochs``: 1, eta, eta^2 ... below it; none below 3 epochs."""
    return asha_rungs(1, eta, max_epochs) if max_epochs >= 3 else []


def promoted(trials: float, eta: int) -> float:
    """How many of ``trials`` that reach a rung Ray's ASHA lets go on, expected. The m-th (from 0) goes on where its
    value is at least the (1 - 1/eta) quantile of the m values recorded before it (the first always does): for
    exchangeable values, with probability (m - q (m - 1)) / (m + 1), q = 1 - 1/eta (numpy's linear quantile
    between two order statistics). About trials / eta, and more for the first few."""
    q = 1 - 1 / eta
    return sum(1.0 if m == 0 else (m - q * (m - 1)) / (m + 1) for m in range(round(trials)))


def search_s(trials: int, max_epochs: int, rungs: list[int], eta: int, epoch_s: float, overhead_s: float,
             concurrency: int, queued: Sequence[float] = ()) -> float:  # fmt: skip
    """The expected seconds of the trials of a search (the module's cost model): the configs queued first, at
    ``queued`` seconds per epoch each, which train all max_epochs epochs, then ``trials`` sampled ones at ``epoch_s``
    per epoch; ``overhead_s`` per trial, ``concurrency`` trials at once, ASHA at ``rungs``."""
    first = promoted(len(queued), eta)  # the queued ones' records come first at every rung

    def stage_s(going_on: float) -> float:
        """An epoch of the trials at a stage: the queued, then ``going_on`` sampled ones, in waves of
        ``concurrency`` that each take their slowest trial's epoch."""
        epochs = [*queued, *[epoch_s] * math.ceil(going_on - 1e-9)]
        return sum(max(epochs[i : i + concurrency]) for i in range(0, len(epochs), concurrency))

    total, going_on, done = math.ceil((len(queued) + trials) / concurrency) * overhead_s, float(trials), 0
    for milestone in [*rungs, max_epochs]:
        total += stage_s(going_on) * (milestone - done)
        going_on, done = promoted(len(queued) + going_on, eta) - first, milestone
    return total


def readable(seconds: float) -> str:
    """A duration as the plan's lines write it: "45 s", "4.8 min", "1.5 h"."""
    return _in(seconds, _unit(seconds))


def _unit(seconds: float) -> str:
    return "s" if seconds < 120 else "min" if seconds < 2 * 3600 else "h"


def _in(seconds: float, unit: str, named: bool = True) -> str:
    value = seconds / {"s": 1, "min": 60, "h": 3600}[unit]
    text = f"{value:.1f}".removesuffix(".0") if unit == "h" or unit == "min" and value < 10 else f"{value:.0f}"
    return f"{text} {unit}" if named else text


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' if n > 1 else ''}"


def _fraction(subset: float) -> str:
    return "the whole training set" if subset >= 1 else f"{subset * 100:.3g} % of the training set"
