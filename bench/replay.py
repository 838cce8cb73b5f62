"""Does tunelab's default search (TPE + ASHA) reach a good config sooner than random search run to the end? Asked of
learning curves recorded by bench/record_curves.py and replayed on a simulated clock, so that many seeds are cheap.

A replayed trial looks its config's recorded val_acc up epoch by epoch and charges the epoch's recorded CPU seconds
to the clock; one trial runs at a time. No Ray: the sampler and the ASHA rule are driven in a loop here.

- **Samplers**: tunelab's own (``tunelab.search.sampler`` on fashion_cnn's spec with ``method`` random or bayes, the
  seed, and ``run_cap`` = ``--trials``, which sets TPE's startup trials), asking in the space's real distributions.
- **Recorded configs**: the recording is a finite set, so each suggestion is replaced by the recorded config nearest
  to it that this search has not tried yet: hyperparameters scaled to [0, 1] on their distribution's scale (log for
  log-uniform), a categorical that differs counts 1 (squared), Euclidean distance. The same rule serves every method,
  so they differ in sampler and stopping only. The study is told the config that ran (its recorded values), not the
  suggestion: the suggestion is marked FAIL (which Optuna's samplers ignore) and the run config added as its own
  trial, so TPE models what it observed. A search that has tried every recorded config ends there (shown in the
  table; record more configs if it happens).
- **What the study is told** (as tunelab.study's StudyWriter writes it): every epoch's val_acc as an intermediate
  value (step = epoch); COMPLETE with its best epoch's value (the leaderboard's rule) after all epochs, PRUNED with
  its best epoch's value so far when ASHA stops it; a diverged config (empty metric) fails and is not told.
- **ASHA** as Ray's ``ASHAScheduler`` (``_Bracket.on_result``, one bracket): at a rung epoch the trial's val_acc of
  that epoch is compared with ``np.nanpercentile`` (1 - 1/eta) of the values recorded at that rung before it (none:
  it continues; one: it must reach that one), it stops if below, and its value is recorded either way. Rungs: the
  planner's (``planned`` below), else ``--asha MIN_ITER,ETA``.
- **Methods**, each for ``--seeds`` seeds 0..S-1: random search without stopping, TPE without stopping, TPE + ASHA
  (tunelab's default). Every search of every method has the same budget: ``--trials`` times the mean CPU seconds of
  a recorded config's whole curve (what random search spends on that many trials on average); an epoch that would
  end past it is not run.

The target is the median over random search's seeds of its final best (a value it reached). A method's time to
target in a seed is the simulated time at the end of the first epoch whose val_acc reaches it; a seed that never
does counts its whole budget, and a median that such a seed decides is a lower bound (">="). Printed: each
method's median time to target with a bootstrap 90 % interval (2000 resamples of the seeds), and its ratio to
random search's with the interval of the ratio (seeds resampled together: the methods' first configs coincide,
since TPE starts with the same seeded random sampler). ``--quick`` replays 3 seeds with a budget of 2 trials: on
bench/curves/fashion_cnn.csv, or where none is recorded yet on a ``record_curves.py --quick`` recording made first
in a temporary folder; its ratio means nothing.
"""

import argparse
import dataclasses
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import optuna
import optuna.distributions as od
import pandas as pd
from optuna.trial import TrialState, create_trial

from tunelab import search, spaces

EXPERIMENT = "fashion_cnn"
RECORDING = Path(__file__).parent / "curves" / f"{EXPERIMENT}.csv"
METHODS = ("random", "TPE", "TPE+ASHA")
GOAL = 0.5  # TPE+ASHA's median time to target / random search's (issue 28)
RESAMPLES = 2000


def planned(epochs: int) -> tuple[list[int], int]:
    """PLANNER: tunelab's default ASHA rungs and eta for trials of ``epochs`` epochs. Until tunelab.plan lands: rungs
    at 1, 3, 9, ... epochs (eta 3), the spread the issue asks the planner for; then ``plan.rungs_of(epochs), plan.ETA``
    (which gives the same from 3 epochs on, and no rungs below)."""
    return spaces.asha_rungs(1, 3, epochs), 3


@dataclasses.dataclass
class Curve:
    params: dict
    values: list[float]  # val_acc per epoch; NaN where it diverged (the curve's last)
    seconds: list[float]  # CPU seconds per epoch


def load(path: Path, spec: spaces.Spec) -> tuple[dict, list[dict], dict[int, Curve]]:
    """A recording's header (what was recorded; its sessions) and its curves by config id."""
    header, sessions = {}, []
    with path.open() as f:
        for line in f:
            if line.startswith("# recording: "):
                header = json.loads(line.split(": ", 1)[1])
            elif line.startswith("# session: "):
                sessions.append(json.loads(line.split(": ", 1)[1]))
    table = pd.read_csv(path, comment="#", dtype=str).sort_values(["config_id", "epoch"], key=lambda c: c.astype(int))
    curves = {}
    for cid, rows in table.groupby(table["config_id"].astype(int), sort=True):
        first = rows.iloc[0]
        params = {k: value(d, first[k]) for k, d in spec.params.items()}
        curves[cid] = Curve(params, [float(v) for v in rows["val_acc"].astype(float)],
                            [float(v) for v in rows["cpu_s"].astype(float)])  # fmt: skip
    return header, sessions, curves


def value(d: od.BaseDistribution, text: str):
    """A hyperparameter's value as the CSV holds it (text), typed as its distribution's."""
    if isinstance(d, od.CategoricalDistribution):
        return next(c for c in d.choices if str(c) == text)
    return int(text) if isinstance(d, od.IntDistribution) else float(text)


def coordinates(params: dict, space: dict[str, od.BaseDistribution]) -> np.ndarray:
    """A config as a point for the nearest-config rule: numbers in [0, 1] on their scale, categoricals one-hot
    scaled so that a differing one is at squared distance 1."""
    out = []
    for k, d in space.items():
        x = params[k]
        if isinstance(d, od.CategoricalDistribution):
            out += [(x == c) / math.sqrt(2) for c in d.choices]
        else:
            scale = math.log if d.log else float
            out.append((scale(x) - scale(d.low)) / (scale(d.high) - scale(d.low)))
    return np.array(out, dtype=float)


def asha_continues(recorded: list[float], value: float, eta: int) -> bool:
    """Ray's ``_Bracket.on_result`` at a rung (mode max): the cutoff is over the values recorded before this one."""
    cutoff = np.nanpercentile(recorded, (1 - 1 / eta) * 100) if recorded else None
    recorded.append(value)
    return cutoff is None or value >= cutoff


def replay(method: str, seed: int, curves: dict[int, Curve], points: dict[int, np.ndarray], spec: spaces.Spec,
           budget: float, trials: int, rungs: list[int], eta: int) -> dict:  # fmt: skip
    """One simulated search: every epoch's (clock, val_acc) in time order, and what it ran."""
    method_spec = dataclasses.replace(spec, method="random" if method == "random" else "bayes", seed=seed,
                                      run_cap=trials)  # fmt: skip
    study = optuna.create_study(direction="maximize", sampler=search.sampler(method_spec))
    at_rung: dict[int, list[float]] = {r: [] for r in rungs} if method == "TPE+ASHA" else {}
    unused = sorted(curves)
    clock, events, ran, stopped, epochs = 0.0, [], 0, 0, 0
    while unused:
        suggestion = study.ask(spec.params)
        here = coordinates(suggestion.params, spec.params)
        cid = min(unused, key=lambda c: float(np.sum((points[c] - here) ** 2)))  # ties: the lowest id
        study.tell(suggestion, state=TrialState.FAIL)
        unused.remove(cid)
        curve, seen, state = curves[cid], {}, TrialState.COMPLETE
        for epoch, (v, s) in enumerate(zip(curve.values, curve.seconds), 1):
            if clock + s > budget:
                return {"events": events, "trials": ran, "stopped": stopped, "epochs": epochs, "exhausted": False}
            clock += s
            epochs += 1
            if math.isnan(v):
                state = TrialState.FAIL
                break
            seen[epoch] = v
            events.append((clock, v))
            if epoch in at_rung and not asha_continues(at_rung[epoch], v, eta):
                state, stopped = TrialState.PRUNED, stopped + 1
                break
        ran += 1
        if state != TrialState.FAIL:
            study.add_trial(create_trial(params=curve.params, distributions=spec.params, value=max(seen.values()),
                                         state=state, intermediate_values=seen))  # fmt: skip
    return {"events": events, "trials": ran, "stopped": stopped, "epochs": epochs, "exhausted": True}


def time_to(result: dict, target: float) -> float | None:
    return next((t for t, v in result["events"] if v >= target), None)


def censored(times: np.ndarray, missed: np.ndarray) -> bool:
    """Whether a miss (counted as the whole budget, the largest time) decides the median of these seeds."""
    n = len(times)
    return n // 2 >= n - int(missed.sum())


def hyperband(text: str) -> tuple[int, int]:
    try:
        min_iter, eta = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN_ITER,ETA (two whole numbers, e.g. 1,3)") from None
    return min_iter, eta


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 seeds, a budget of 2 trials: a smoke run")
    p.add_argument("--recording", type=Path, help=f"the curves (default bench/curves/{EXPERIMENT}.csv)")
    p.add_argument("--seeds", type=int, help="seeds 0..S-1 per method (default 20, --quick 3)")
    p.add_argument("--trials", type=int, help="the budget, in random search's trials (default 20, --quick 2)")
    p.add_argument("--asha", metavar="MIN_ITER,ETA", type=hyperband, help="TPE+ASHA's rungs instead of the planner's")
    args = p.parse_args()
    quick = args.quick
    seeds, trials = args.seeds or (3 if quick else 20), args.trials or (2 if quick else 20)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.recording or RECORDING
        if not path.exists() and quick and not args.recording:
            path = Path(tmp) / f"{EXPERIMENT}.csv"
            print(f"no recording at {RECORDING}: recording a --quick one first", flush=True)
            subprocess.run([sys.executable, str(Path(__file__).parent / "record_curves.py"), "--quick", "--out",
                            str(path)], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        if not path.exists():
            raise SystemExit(f"no recording at {path}: run bench/record_curves.py (make bench-record) first")
        report(path, seeds, trials, args.asha, quick)


def report(path: Path, n_seeds: int, trials: int, asha: tuple[int, int] | None, quick: bool) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # TPE's group, constant_liar
    spec = spaces.load(EXPERIMENT)
    header, sessions, curves = load(path, spec)
    max_epochs = max(len(c.values) for c in curves.values())
    rungs, eta = (spaces.asha_rungs(asha[0], asha[1], max_epochs), asha[1]) if asha else planned(max_epochs)
    points = {c: coordinates(curve.params, spec.params) for c, curve in curves.items()}
    budget = trials * statistics.mean(sum(c.seconds) for c in curves.values())
    seeds = range(n_seeds)
    results = {m: [replay(m, s, curves, points, spec, budget, trials, rungs, eta) for s in seeds] for m in METHODS}

    finals = [max((v for _, v in r["events"]), default=-math.inf) for r in results["random"]]
    target = statistics.median_low(finals)
    times, missed = {}, {}
    for m, rs in results.items():
        found = [time_to(r, target) for r in rs]
        times[m] = np.array([budget if t is None else t for t in found])
        missed[m] = np.array([t is None for t in found])

    machines = sorted({f"{s.get('machine')} ({s.get('cpus')} CPUs, load {s.get('load_average')})" for s in sessions})
    smoke = " (--quick: a smoke run, its ratios mean nothing)" if quick else ""
    print(f"# Replay of recorded curves, {datetime.date.today()}{smoke}\n")
    print(f"- recording: {path} ({len(curves)} configs of {header.get('experiment')} x {max_epochs} epochs on "
          f"{header.get('subset', math.nan):.0%} of the search's data, {header.get('train_images')} train / "
          f"{header.get('val_images')} validation images; configs drawn by {header.get('sampler')}; "
          f"recorded on {'; '.join(machines) or '?'})")
    print(f"- replayed on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (the clock is the recording's "
          f"CPU seconds, so this machine's load does not enter)")
    print(f"- budget per search: {budget:.0f} CPU s ({trials} x the mean whole curve, {budget / trials:.1f} s); "
          f"{n_seeds} seeds per method; TPE+ASHA's rungs at epochs {', '.join(map(str, rungs))} of {max_epochs}, "
          f"eta {eta} ({'--asha' if asha else 'planned'})")
    print(f"- target: val_acc >= {target:.4f}, random search's median final best (the recording's best config: "
          f"{max(max((v for v in c.values if not math.isnan(v)), default=0) for c in curves.values()):.4f})\n")

    rng = np.random.default_rng(0)
    picks = rng.integers(0, n_seeds, (RESAMPLES, n_seeds))  # the same resampled seeds for every method
    boot = {m: np.median(times[m][picks], axis=1) for m in METHODS}
    base = np.median(times["random"])
    print("| method | median s to target | 90 % interval | / random | 90 % interval | reached | trials | epochs "
          "| stopped | recording used up | median final best |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios = {}
    for m in METHODS:
        lower = ">= " if censored(times[m], missed[m]) else ""
        med, (lo, hi) = np.median(times[m]), np.percentile(boot[m], [5, 95])
        ratio, (rlo, rhi) = med / base, np.percentile(boot[m] / boot["random"], [5, 95])
        ratios[m] = (lower, ratio, rlo, rhi)
        rs = results[m]
        best = statistics.median(max((v for _, v in r["events"]), default=math.nan) for r in rs)
        print(f"| {m} | {lower}{med:.4g} | {lo:.4g} to {hi:.4g} | {lower}{ratio:.2f}x | {rlo:.2f}x to {rhi:.2f}x "
              f"| {int((~missed[m]).sum())} of {n_seeds} | {statistics.mean(r['trials'] for r in rs):.1f} "
              f"| {statistics.mean(r['epochs'] for r in rs):.0f} | {statistics.mean(r['stopped'] for r in rs):.1f} "
              f"| {sum(r['exhausted'] for r in rs)} of {n_seeds} | {best:.4f} |")
    print("\n(trials, epochs, stopped: means per search; a seed that misses the target counts its whole budget, and "
          "a median it decides is a lower bound, >=)\n")
    lower, ratio, rlo, rhi = ratios["TPE+ASHA"]
    print(f"TPE+ASHA / random, median time to target: {lower}{ratio:.2f}x (90 % interval {rlo:.2f}x to {rhi:.2f}x; "
          f"goal <= {GOAL}x with the interval below 1)")


if __name__ == "__main__":
    main()
