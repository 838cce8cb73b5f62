"""The run's study (tunelab.store.study, the record of its trials) -> one row per trial, best first -> leaderboard.csv
/ leaderboard.md / best.yaml.

The noise of a validation metric: a trial's accuracy (ACCURACIES: the share of the validation examples it classified
right) comes with its 95 % Wilson interval over the ``val_examples`` examples it was scored on (columns
``<metric>_low``, ``<metric>_high``). Other metrics (losses, Fréchet distances, reconstruction errors, pixel accuracy,
whose pixels are no independent trials) have no per-example values here to resample: their bounds are empty (NaN,
"—" in leaderboard.md and the report), not invented. With one objective, ``tied`` says which trials are statistically
tied with the best (``tied_with_best``; empty where there is no interval to tell), and best.yaml and ``tunelab
retrain`` take the one the spec ``prefer``s among them (``runs.preferred_first``). Several objectives keep their
Pareto ranking (tunelab.store.pareto), with the intervals and without ``tied``.
"""

import math

import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from tunelab.files import atomic_write
from tunelab.spec.spaces import HARNESS_METRICS, PREFER, Spec
from tunelab.store import pareto, study
from tunelab.store.runs import StoredRun, plain, preferred_first

ACCURACIES = ("val_acc",)  # metrics that are a share of the validation examples: a binomial interval holds
LEVEL = 0.95  # of the intervals; the tie test's level is 1 - LEVEL


def histories(run: StoredRun) -> dict[str, pd.DataFrame]:
    """Each trial's per-epoch metrics (one row per epoch), by trial id, from the run's study."""
    return {t.user_attrs["ray_trial_id"]: pd.DataFrame(study.epochs(t).values()) for t in _trials(run)}


def _trials(run: StoredRun) -> list[FrozenTrial]:
    """The trials this run's search ran or will run, in the order the sampler drew them."""
    return [t for t in study.open_study(run).get_trials(deepcopy=False) if study.ran(t)]


def _status(trial: FrozenTrial) -> str:
    if trial.state == TrialState.RUNNING:  # running now, or until Ctrl-C (Ray's saved state has it)
        return "interrupted" if trial.user_attrs.get("epochs") else "pending"
    return trial.user_attrs.get("status", "failed")


def table(run: StoredRun) -> pd.DataFrame:
    """One row per trial: its status, its metrics at the best epoch it reported (tunelab.spec.rules.is_new_best; for
    several objectives, its last) with their intervals, whether it is tied with the best (one objective), its epochs,
    size, time, validation examples and sampled config; best first (for several objectives, see
    tunelab.store.pareto)."""
    spec = run.spec
    rows = []
    for trial in _trials(run):
        history = study.epochs(trial)
        best = history.get(int(trial.user_attrs.get("best_epoch", 0)), {})
        last = history.get(max(history, default=0), {})
        examples = int(best.get("val_examples", 0))  # 0: unknown
        row = {"trial_id": trial.user_attrs["ray_trial_id"], "status": _status(trial)}
        for m in spec.metrics:
            row[m] = float(best.get(m, math.nan))
            if m not in HARNESS_METRICS:  # a parameter count or seconds are measured, not estimated
                row[f"{m}_low"], row[f"{m}_high"] = interval(m, row[m], examples)
        row |= {
            "epochs": max(history, default=0),
            "best_epoch": int(trial.user_attrs.get("best_epoch", 0)) if best else 0,
            "params": int(last.get("params", 0)),
            "duration_s": round(float(last.get("duration_s", 0.0)), 3),  # its epochs' seconds
            "val_examples": examples,
        }
        row |= {f"config/{k}": v for k, v in trial.params.items()}
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    if spec.multi_objective:
        values, targets = frame[spec.metrics].to_numpy(float), [spec.targets.get(m) for m in spec.metrics]
        order, on_front = pareto.rank(values, spec.modes, targets)
        frame.insert(frame.columns.get_loc("epochs"), "pareto", on_front)
        if spec.targets:
            frame.insert(frame.columns.get_loc("epochs"), "on_target", pareto.on_target(values, spec.modes, targets))
        return frame.iloc[order].reset_index(drop=True)
    frame = frame.sort_values(spec.metric, ascending=spec.mode == "min", na_position="last", kind="stable")
    frame = frame.reset_index(drop=True)
    frame.insert(frame.columns.get_loc("epochs"), "tied", tied_with_best(frame, spec.metric))
    return frame


def _counts(metric: str, value: float, examples: int) -> tuple[int, int] | None:
    """A trial's right answers and examples, where ``metric`` is an accuracy over ``examples`` (0: unknown)."""
    if metric in ACCURACIES and examples > 0 and math.isfinite(value):
        return round(value * examples), examples
    return None


def interval(metric: str, value: float, examples: int) -> tuple[float, float]:
    """The 95 % interval of a trial's ``value`` of ``metric``: for an accuracy over ``examples``, Wilson's (it stays
    in [0, 1] and keeps its coverage near 0 % and 100 %, where the normal approximation's fails); else NaNs."""
    counts = _counts(metric, value, examples)
    if counts is None:
        return math.nan, math.nan
    from scipy import stats  # a second to import: not for commands that show no interval

    found = stats.binomtest(*counts).proportion_ci(LEVEL, method="wilson")
    return float(found.low), float(found.high)


def tied_with_best(frame: pd.DataFrame, metric: str) -> list[bool | None]:
    """Per row of ``frame`` (one objective, best first): whether the trial is tied with the first. Tied: Fisher's exact
    test of the two trials' right and wrong counts does not reject equal accuracy at the 5 % level (exact at any count,
    also near 100 %; unpaired, hence conservative, as no per-example predictions are kept to pair them). None where
    either has no interval: nothing can be told."""
    counts = [_counts(metric, v, n) for v, n in zip(frame[metric], frame["val_examples"])]
    if not counts or counts[0] is None:
        return [True if i == 0 and pd.notna(v) else None for i, v in enumerate(frame[metric])]
    from scipy import stats

    right, n = counts[0]

    def tied(k: int, m: int) -> bool:
        return bool(stats.fisher_exact([[right, n - right], [k, m - k]]).pvalue >= 1 - LEVEL)

    return [None if c is None else tied(*c) for c in counts]


def write(run: StoredRun) -> pd.DataFrame:
    """Write leaderboard.csv, leaderboard.md and best.yaml from the search's results; return the table."""
    frame = table(run)
    atomic_write(run.leaderboard_file, frame.to_csv(index=False))
    atomic_write(run.dir / "leaderboard.md", _markdown(frame, run) + "\n")
    ok = preferred_first(frame[frame[run.spec.metric].notna()], run.spec.prefer) if not frame.empty else frame
    if len(ok):
        best = ok.iloc[0]
        info = {
            "run": run.name,
            "experiment": run.spec.name,
            "trainable": run.spec.trainable,
            "dataset": run.spec.dataset,
            "trial_id": best["trial_id"],
            "metric": run.spec.metric,
            "value": float(best[run.spec.metric]),
            "best_epoch": int(best["best_epoch"]),
            "prefer": run.spec.prefer,
            "config": run.config_of(best),
        }
        if run.spec.multi_objective:
            info["objectives"] = {m: plain(best[m]) for m in run.spec.metrics}
        atomic_write(run.best_file, yaml.safe_dump(info, sort_keys=False))
    return frame


def _markdown(frame: pd.DataFrame, run: StoredRun, top: int | None = None) -> str:
    if frame.empty:
        return f"# {run.name}\n\nNo trials yet."
    notes = f"{order_note(run.spec)} {noise_note(run.spec)}"
    rows = shown(frame.head(top) if top else frame, run.spec).to_markdown(index=False, floatfmt=".4g")
    return f"# Leaderboard: {run.name}\n\n{notes}\n\n{rows}"


def shown(frame: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    """The leaderboard as people read it (leaderboard.md, the report): each metric's bounds as one column
    ``<metric> 95 %`` beside it, "—" where there is no interval or tie to tell, configs without their prefix."""
    out = frame.rename(columns=lambda c: c.removeprefix("config/"))
    for m in spec.metrics:
        if f"{m}_low" in out:
            bounds = zip(out.pop(f"{m}_low"), out.pop(f"{m}_high"))
            text = [f"{low:.4g}–{high:.4g}" if pd.notna(low) else "—" for low, high in bounds]
            out.insert(out.columns.get_loc(m) + 1, f"{m} 95 %", text)
    if "tied" in out:
        out["tied"] = out["tied"].astype(object).where(out["tied"].notna(), "—")
    return out


def noise_note(spec: Spec) -> str:
    """What the intervals and ``tied`` say, in a sentence or three."""
    notes = []
    if accuracies := [m for m in spec.metrics if m in ACCURACIES]:
        notes.append(f"{', '.join(accuracies)} 95 %: the Wilson interval over the trial's `val_examples` validation "
                     "examples.")  # fmt: skip
    if others := [m for m in spec.metrics if m not in ACCURACIES and m not in HARNESS_METRICS]:
        notes.append(f"{', '.join(others)}: no interval (no per-example values to resample).")
    if not spec.multi_objective:
        notes.append("`tied`: Fisher's exact test at 5 % cannot tell the trial from the best (—: no interval to "
                     f"tell); best.yaml and `tunelab retrain` take, of the tied, {PREFER[spec.prefer]} "
                     f"(prefer: {spec.prefer}).")  # fmt: skip
    return " ".join(notes)


def order_note(spec) -> str:
    """How the leaderboard is ordered, in a sentence."""
    if not spec.multi_objective:
        return f"{spec.metric} ({spec.mode}), best first."
    objectives = ", ".join(f"{m} ({mode})" for m, mode in zip(spec.metrics, spec.modes))
    targets = f" (those reaching the targets {spec.targets} first)" if spec.targets else ""
    return (
        f"Objectives {objectives}, each trial at its last epoch. Pareto-optimal trials (`pareto`) first{targets}, "
        "nearest the ideal point first: the first row is the one to hand in. "
        f"Then the others by {spec.metric}."
    )


def render(frame: pd.DataFrame, run: StoredRun, top: int) -> str:
    return _markdown(frame, run, top)
