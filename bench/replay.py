"""Does tunelab's default search (TPE + ASHA) reach a good config sooner than random search run to the end, and how
much sooner with shipped priors or a warm start? Asked of learning curves recorded by bench/record_curves.py and
replayed on a simulated clock, so that many seeds are cheap.

A replayed trial looks its config's recorded val_acc up epoch by epoch and charges the epoch's recorded CPU seconds
to the clock; one trial runs at a time. No Ray: the sampler and the ASHA rule are driven in a loop here.

- **Samplers**: tunelab's own (``tunelab.engine.search.sampler`` on fashion_cnn's spec with ``method`` random or bayes,
  the seed, and ``run_cap`` = ``--trials``, which sets TPE's startup trials), asking in the space's real distributions.
- **Recorded configs**: the recording is a finite set, so each suggestion is replaced by the recorded config nearest
  to it that this search has not tried yet: hyperparameters scaled to [0, 1] on their distribution's scale (log for
  log-uniform), a categorical that differs counts 1 (squared), Euclidean distance. The same rule serves every method,
  so they differ in sampler, stopping and what the study starts from only. The study is told the config that ran
  (its recorded values), not the suggestion: the suggestion is marked FAIL (which Optuna's samplers ignore) and the
  run config added as its own trial, so TPE models what it observed. A search that has tried every recorded config
  ends there (shown in the table; record more configs if it happens).
- **What the study is told** (as tunelab.engine.record writes it): every epoch's val_acc as an
  intermediate value (step = epoch); COMPLETE with its best epoch's value (the leaderboard's rule) after all epochs,
  PRUNED with its best epoch's value so far when ASHA stops it; a diverged config (empty metric) fails and is not told.
- **ASHA** as Ray's ``ASHAScheduler`` (``_Bracket.on_result``, one bracket): at a rung epoch the trial's val_acc of
  that epoch is compared with ``np.nanpercentile`` (1 - 1/eta) of the values recorded at that rung before it (none:
  it continues; one: it must reach that one), it stops if below, and its value is recorded either way. Rungs: the
  planner's (``planned`` below), else ``--asha MIN_ITER,ETA``.
- **Priors** (issue 29): the top ``--priors`` configs (default 4) of another recording, ``--priors-from`` (default
  bench/curves/fashion_cnn_priors.csv, recorded with ``--offset 0.5 --seed 1``), ranked by their best epoch's
  val_acc (the leaderboard's rule) among the configs that trained every epoch without diverging (``top_configs``).
  A recording whose data overlaps the replayed one's (its header's offset and subset) is refused. They are enqueued
  in the study (``study.enqueue_trial``, as a search queues its first points), best first, so the
  first trials ask for them; each then runs as a suggestion does (the nearest untried recorded config). The replay
  has no baseline before them. ``--show-priors`` prints them as a ``priors:`` list for search_spaces/*.yaml.
- **Warm start**: an earlier tunelab-default search of ``--earlier-trials`` trials (default 12; seed + 1000; no
  time budget) is replayed first, and its trials are imported into the new search's study before it samples, by
  tunelab.engine.warmstart's own rules (``tunelab.engine.warmstart.rebuild``, with the spec at the recording's epochs
  standing for both runs): COMPLETE with its value where it trained every epoch, PRUNED with its per-epoch values where
  ASHA stopped it after more than one epoch; those it stopped after their first and failed ones left out. The new
  search's clock starts at 0 (the earlier run's time is not charged), its ASHA starts empty, and the nearest-untried
  rule counts its own trials only: as in a real warm start, it may run a config that the earlier run tried.
- **Methods**, each for ``--seeds`` seeds 0..S-1: random search without stopping, TPE without stopping, TPE + ASHA
  (tunelab's default, without priors), tunelab's default with priors, and tunelab's default warm-started. Every
  search of every method has the same budget: ``--trials`` times the mean CPU seconds of a recorded config's whole
  curve (what random search spends on that many trials on average); an epoch that would end past it is not run.

The target is the median over random search's seeds of its final best (a value it reached). A method's time to
target in a seed is the simulated time at the end of the first epoch whose val_acc reaches it; a seed that never
does counts its whole budget, and a median that such a seed decides is a lower bound (">="). Printed: each
method's median time to target with a bootstrap 90 % interval (2000 resamples of the seeds), its ratio to random
search's with the interval of the ratio (seeds resampled together: the methods' first configs coincide, since TPE
starts with the same seeded random sampler), and the goals' ratios: TPE+ASHA / random, priors / random, warm / cold
start (TPE+ASHA). ``--quick`` replays 3 seeds with a budget of 2 trials: on the recordings in bench/curves/, or where
one is not recorded yet on a ``record_curves.py --quick`` recording (``--offset 0.5 --seed 1`` for the priors) made
first in a temporary folder; its ratios mean nothing.
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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
import optuna.distributions as od
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState, create_trial

from tunelab.engine import search as engine, warmstart
from tunelab.spec import planner, spaces

EXPERIMENT = "fashion_cnn"
CURVES = Path(__file__).parent / "curves"
RECORDING = CURVES / f"{EXPERIMENT}.csv"
PRIORS = CURVES / f"{EXPERIMENT}_priors.csv"
PRIORS_RECORD = ["--offset", "0.5", "--seed", "1"]  # how the default priors file is recorded (beside --configs 30)
METHODS = ("random", "TPE", "TPE+ASHA", "priors", "warm")
LABELS = {
    "random": "random",
    "TPE": "TPE",
    "TPE+ASHA": "TPE+ASHA: tunelab default without priors",
    "priors": "tunelab default + priors",
    "warm": "tunelab default, warm start from one earlier run",
}
ASHA = ("TPE+ASHA", "priors", "warm")  # the methods that stop trials
GOALS = {"TPE+ASHA": 0.5, "priors": 0.3}  # median time to target / random search's (issues 28, 29)
WARM_GOAL = 0.5  # warm start's / a cold start's (TPE+ASHA's) (issue 29)
N_PRIORS, EARLIER_TRIALS, EARLIER_SEED = 4, 12, 1000
RESAMPLES = 2000


def planned(epochs: int) -> tuple[list[int], int]:
    """tunelab's default ASHA rungs and eta for trials of ``epochs`` epochs: the planner's."""
    return planner.rungs_of(epochs), planner.ETA


@dataclasses.dataclass
class Curve:
    params: dict
    values: list[float]  # val_acc per epoch; NaN where it diverged (the curve's last)
    seconds: list[float]  # CPU seconds per epoch


def read_recording(path: Path, spec: spaces.Spec) -> tuple[dict, list[dict], dict[int, Curve]]:
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
            assert isinstance(d, od.IntDistribution | od.FloatDistribution)  # a space's numbers
            scale = math.log if d.log else float
            out.append((scale(x) - scale(d.low)) / (scale(d.high) - scale(d.low)))
    return np.array(out, dtype=float)


def nearest(params: dict, unused: list[int], points: dict[int, np.ndarray], spec: spaces.Spec) -> tuple[int, float]:
    """The untried recorded config nearest to ``params`` (ties: the lowest id), and its distance."""
    here = coordinates(params, spec.params)
    cid = min(unused, key=lambda c: float(np.sum((points[c] - here) ** 2)))
    return cid, float(np.sqrt(np.sum((points[cid] - here) ** 2)))


# --- priors -----------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Prior:
    config_id: int  # in its recording
    params: dict  # floats to 4 significant digits (as written into a space file), inside the space
    best: float  # its best epoch's val_acc
    epoch: int  # that epoch
    epochs: int  # of how many


def top_configs(path: Path, spec: spaces.Spec, k: int) -> tuple[dict, list[dict], list[Prior]]:
    """A recording's header, sessions and its ``k`` best configs, best first: among those that trained every
    epoch without diverging, by their best epoch's val_acc (the leaderboard's rule: a trial's value is its best
    epoch's), ties by the last epoch's value, then the lower config id."""
    header, sessions, curves = read_recording(path, spec)
    epochs = max(len(c.values) for c in curves.values())
    whole = {c: v for c, v in curves.items() if len(v.values) == epochs and not any(map(math.isnan, v.values))}
    ranked = sorted(whole, key=lambda c: (-max(whole[c].values), -whole[c].values[-1], c))[:k]
    top = []
    for c in ranked:
        values = whole[c].values
        top.append(Prior(c, written(whole[c].params, spec), max(values), 1 + values.index(max(values)), epochs))
    return header, sessions, top


def written(params: dict, spec: spaces.Spec) -> dict:
    """A config as a space file holds it: floats to 4 significant digits, kept inside their range."""
    out = {}
    for k, x in params.items():
        d = spec.params[k]
        if isinstance(x, float) and isinstance(d, od.FloatDistribution):
            x = min(max(float(f"{x:.4g}"), d.low), d.high)
        out[k] = x
    return out


def span(header: dict) -> tuple[float, float]:
    """The fraction of the search's data a recording trained and validated on: [offset, offset + subset)."""
    offset = float(header.get("offset", 0.0))
    return offset, offset + float(header["subset"])


def check_apart(replayed: dict, path: Path, priors: dict, priors_path: Path) -> None:
    """Refuse priors recorded on another experiment or data set, or on data the replayed recording uses."""
    same = ("experiment", "dataset", "split")
    if any(priors.get(k) != replayed.get(k) for k in same):
        raise SystemExit(
            f"--priors-from {priors_path} recorded {[priors.get(k) for k in same]}, the replayed "
            f"{path} {[replayed.get(k) for k in same]}: priors must come from the same experiment"
        )
    if "subset" not in priors or "subset" not in replayed:
        raise SystemExit(f"{priors_path if 'subset' not in priors else path} has no subset in its header: cannot "
                         f"tell whether the priors come from data the replay does not use")  # fmt: skip
    (a, b), (c, d) = span(replayed), span(priors)
    if max(a, c) < min(b, d):
        raise SystemExit(f"--priors-from {priors_path} was recorded on the fraction {c:g} to {d:g} of the search's "
                         f"data, which overlaps the replayed {path}'s ({a:g} to {b:g}): priors must come from data "
                         f"the replay does not use (record_curves.py --offset)")  # fmt: skip


def priors_yaml(path: Path, header: dict, sessions: list[dict], priors: list[Prior]) -> str:
    """The priors as a space file's ``priors:`` list, each with a ``from:`` note, and a comment with the command
    that recorded them."""
    try:
        name = str(path.resolve().relative_to(Path(__file__).resolve().parents[1]))
    except ValueError:
        name = str(path)
    where = f"{name} (offset {header.get('offset', 0)}, seed {header.get('sampler_seed')}, subset {header['subset']})"
    items = [{**p.params, "from": f"{where}, config {p.config_id}: best val_acc {p.best:.4f} at epoch "
              f"{p.epoch} of {p.epochs}"} for p in priors]  # fmt: skip
    commands = "; ".join(dict.fromkeys(s["command"] for s in sessions if "command" in s)) or "?"
    return (
        f"# the top {len(priors)} configs of {name} by their best epoch's val_acc (bench/replay.py top_configs), "
        f"recorded by: {commands}\n" + yaml.safe_dump({"priors": items}, sort_keys=False, width=1000)
    )


# --- the search -------------------------------------------------------------------------------------------------


def asha_continues(recorded: list[float], value: float, eta: int) -> bool:
    """Ray's ``_Bracket.on_result`` at a rung (mode max): the cutoff is over the values recorded before this one."""
    cutoff = np.nanpercentile(recorded, (1 - 1 / eta) * 100) if recorded else None
    recorded.append(value)
    return cutoff is None or bool(value >= cutoff)


def replay(method: str, seed: int, curves: dict[int, Curve], points: dict[int, np.ndarray], spec: spaces.Spec,
           budget: float, trials: int, rungs: list[int], eta: int, priors: Sequence[dict] = (),
           imported: Sequence[FrozenTrial] = (), max_trials: int | None = None) -> dict:  # fmt: skip
    """One simulated search: every epoch's (clock, val_acc) in time order, what it ran, and its study. ``priors``
    are enqueued first, ``imported`` trials added before it samples; ``max_trials`` ends it after that many."""
    method_spec = dataclasses.replace(spec, method="random" if method == "random" else "bayes", seed=seed,
                                      run_cap=trials)  # fmt: skip
    study = optuna.create_study(direction="maximize", sampler=engine.sampler(method_spec))
    study.add_trials(imported)
    for prior in priors:
        study.enqueue_trial(prior)
    at_rung: dict[int, list[float]] = {r: [] for r in rungs} if method in ASHA else {}
    unused = sorted(curves)
    clock, ran, stopped, epochs = 0.0, 0, 0, 0
    events: list[tuple[float, float]] = []  # (clock, val_acc) of every epoch
    ran_ids: list[int] = []

    def result(exhausted: bool) -> dict:
        return {"events": events, "trials": ran, "stopped": stopped, "epochs": epochs, "exhausted": exhausted,
                "study": study, "ran": ran_ids}  # fmt: skip

    while unused and (max_trials is None or ran < max_trials):
        suggestion = study.ask(spec.params)
        cid, _ = nearest(suggestion.params, unused, points, spec)
        study.tell(suggestion, state=TrialState.FAIL)
        unused.remove(cid)
        ran_ids.append(cid)
        curve, seen, state = curves[cid], {}, TrialState.COMPLETE
        for epoch, (v, s) in enumerate(zip(curve.values, curve.seconds), 1):
            if clock + s > budget:
                return result(False)
            clock += s
            epochs += 1
            if math.isnan(v):
                state = TrialState.FAIL
                break
            seen[epoch] = v
            events.append((clock, v))
            # the queued priors train all their epochs, as tunelab.engine.search's ASHA lets them; their values count
            if epoch in at_rung and not asha_continues(at_rung[epoch], v, eta) and ran >= len(priors):
                state, stopped = TrialState.PRUNED, stopped + 1
                break
        ran += 1
        if state != TrialState.FAIL:
            study.add_trial(create_trial(params=curve.params, distributions=spec.params, value=max(seen.values()),
                                         state=state, intermediate_values=seen))  # fmt: skip
    return result(not unused)


def imports(earlier: optuna.Study, spec: spaces.Spec) -> list[FrozenTrial]:
    """The earlier search's trials as ``tunelab search --warm-start`` imports them
    (``tunelab.engine.warmstart.rebuild``)."""
    kept, dropped = warmstart.rebuild(earlier.trials, spec, spec, "earlier")
    dropped.pop(warmstart.SHORT, None)
    assert not dropped, dropped  # the same space: nothing is outside it
    return kept


def warm(seed: int, curves: dict[int, Curve], points: dict[int, np.ndarray], spec: spaces.Spec, budget: float,
         trials: int, rungs: list[int], eta: int, earlier_trials: int) -> dict:  # fmt: skip
    """A warm-started search: an earlier tunelab-default search of ``earlier_trials`` trials (seed + EARLIER_SEED,
    no time budget), its trials imported into the new one's study, then the new search as a cold one runs."""
    earlier = replay("TPE+ASHA", seed + EARLIER_SEED, curves, points, spec, math.inf, earlier_trials, rungs, eta,
                     max_trials=earlier_trials)  # fmt: skip
    epochs = max(len(c.values) for c in curves.values())
    imported = imports(earlier["study"], dataclasses.replace(spec, max_epochs=epochs))
    out = replay("warm", seed, curves, points, spec, budget, trials, rungs, eta, imported=imported)
    return out | {"imported": len(imported), "imported_complete": sum(t.state == TrialState.COMPLETE for t in imported),
                  "earlier_best": max((v for _, v in earlier["events"]), default=math.nan)}  # fmt: skip


def time_to(result: dict, target: float) -> float | None:
    return next((t for t, v in result["events"] if v >= target), None)


def censored(times: np.ndarray, missed: np.ndarray) -> bool:
    """Whether a miss (counted as the whole budget, the largest time) decides the median of these seeds."""
    n = len(times)
    return n // 2 >= n - int(missed.sum())


def bound(over: bool, under: bool) -> str:
    """A ratio's mark where a lower bound decides its numerator's median (``over``) or its denominator's."""
    return {(True, True): "~", (True, False): ">= ", (False, True): "<= "}.get((over, under), "")


def hyperband(text: str) -> tuple[int, int]:
    try:
        min_iter, eta = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN_ITER,ETA (two whole numbers, e.g. 1,2)") from None
    return min_iter, eta


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 seeds, a budget of 2 trials: a smoke run")
    p.add_argument("--recording", type=Path, help=f"the curves (default bench/curves/{EXPERIMENT}.csv)")
    p.add_argument("--seeds", type=int, help="seeds 0..S-1 per method (default 20, --quick 3)")
    p.add_argument("--trials", type=int, help="the budget, in random search's trials (default 20, --quick 2)")
    p.add_argument("--asha", metavar="MIN_ITER,ETA", type=hyperband, help="TPE+ASHA's rungs instead of the planner's")
    p.add_argument(
        "--priors-from",
        type=Path,
        metavar="PATH",
        help=f"the recording the priors come from, on other "
        f"data than --recording's (default bench/curves/{PRIORS.name}: record_curves.py "
        f"{' '.join(PRIORS_RECORD)} --configs 30 --out it)",
    )
    p.add_argument("--priors", type=int, default=N_PRIORS, help=f"how many priors (default {N_PRIORS})")
    p.add_argument(
        "--show-priors",
        action="store_true",
        help="print the priors at the end as a space file's priors: list (for search_spaces/*.yaml)",
    )
    p.add_argument(
        "--earlier-trials",
        type=int,
        default=EARLIER_TRIALS,
        help=f"the trials of the earlier search a warm start imports (default {EARLIER_TRIALS})",
    )
    args = p.parse_args()
    if args.priors < 1 or args.earlier_trials < 1:
        p.error("--priors and --earlier-trials take 1 or more")
    quick = args.quick
    seeds, trials = args.seeds or (3 if quick else 20), args.trials or (2 if quick else 20)
    with tempfile.TemporaryDirectory() as tmp:
        path, priors = args.recording or RECORDING, args.priors_from or PRIORS
        todo = []  # --quick: the recordings to make first, at once
        if not path.exists() and quick and not args.recording:
            print(f"no recording at {RECORDING}: recording a --quick one first", flush=True)
            path = Path(tmp) / f"{EXPERIMENT}.csv"
            todo.append(["--quick", "--out", str(path)])
        if not priors.exists() and quick and not args.priors_from:
            print(f"no priors recording at {PRIORS}: recording a --quick one first", flush=True)
            priors = Path(tmp) / PRIORS.name
            todo.append(["--quick", *PRIORS_RECORD, "--out", str(priors)])
        record = str(Path(__file__).parent / "record_curves.py")
        jobs = [subprocess.Popen([sys.executable, record, *a], stdout=subprocess.DEVNULL) for a in todo]
        if any(job.wait() for job in jobs):
            raise SystemExit("a --quick recording failed (its error above)")
        if not path.exists():
            raise SystemExit(f"no recording at {path}: run bench/record_curves.py (make bench-record) first")
        if not priors.exists():
            raise SystemExit(f"no priors recording at {priors}: run bench/record_curves.py {' '.join(PRIORS_RECORD)} "
                             f"--configs 30 --out {priors} (make bench-record) first")  # fmt: skip
        report(path, priors, seeds, trials, args.asha, quick, args.priors, args.earlier_trials, args.show_priors)


def report(path: Path, priors_path: Path, n_seeds: int, trials: int, asha: tuple[int, int] | None, quick: bool,
           n_priors: int, earlier_trials: int, show_priors: bool) -> None:  # fmt: skip
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # TPE's group, constant_liar
    spec = spaces.load_spec(EXPERIMENT)
    header, sessions, curves = read_recording(path, spec)
    prior_header, prior_sessions, priors = top_configs(priors_path, spec, n_priors)
    check_apart(header, path, prior_header, priors_path)
    max_epochs = max(len(c.values) for c in curves.values())
    rungs, eta = (spaces.asha_rungs(asha[0], asha[1], max_epochs), asha[1]) if asha else planned(max_epochs)
    points = {c: coordinates(curve.params, spec.params) for c, curve in curves.items()}
    budget = trials * statistics.mean(sum(c.seconds) for c in curves.values())
    seeds = range(n_seeds)
    fixed = (curves, points, spec, budget, trials, rungs, eta)
    results = {m: [replay(m, s, *fixed) for s in seeds] for m in METHODS[:3]}
    results["priors"] = [replay("priors", s, *fixed, priors=[p.params for p in priors]) for s in seeds]
    results["warm"] = [warm(s, *fixed, earlier_trials) for s in seeds]

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
    print(
        f"- recording: {path} ({len(curves)} configs of {header.get('experiment')} x {max_epochs} epochs on "
        f"{header.get('subset', math.nan):.0%} of the search's data, {header.get('train_images')} train / "
        f"{header.get('val_images')} validation images; configs drawn by {header.get('sampler')}; "
        f"recorded on {'; '.join(machines) or '?'})"
    )
    print(
        f"- replayed on {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (the clock is the recording's "
        f"CPU seconds, so this machine's load does not enter)"
    )
    print(
        f"- budget per search: {budget:.0f} CPU s ({trials} x the mean whole curve, {budget / trials:.1f} s); "
        f"{n_seeds} seeds per method; TPE+ASHA's rungs at epochs {', '.join(map(str, rungs))} of {max_epochs}, "
        f"eta {eta} ({'--asha' if asha else 'planned'})"
    )
    lo, hi = span(prior_header)
    mapped, unused = [], sorted(curves)
    for prior in priors:  # what the priors run as (the same in every seed: they come first)
        cid, distance = nearest(prior.params, unused, points, spec)
        unused.remove(cid)
        best = max((v for v in curves[cid].values if not math.isnan(v)), default=math.nan)
        mapped.append(f"{prior.config_id} ({prior.best:.4f}) -> {cid} (distance {distance:.2f}, {best:.4f})")
    print(
        f"- priors: the top {len(priors)} of {priors_path} by best epoch's val_acc (its data: the fraction {lo:g} "
        f"to {hi:g} of the search's, {prior_header.get('val_images')} validation images; configs drawn by "
        f"{prior_header.get('sampler')}); its config (best val_acc there) -> the replayed config they run as "
        f"(distance, best val_acc here): {'; '.join(mapped)}"
    )
    imported = [r["imported"] for r in results["warm"]]
    print(
        f"- warm start: an earlier tunelab-default search of {earlier_trials} trials (seed + {EARLIER_SEED}, no "
        f"time budget) imported as {statistics.mean(imported):.1f} trials per seed "
        f"({statistics.mean(r['imported_complete'] for r in results['warm']):.1f} complete, the rest pruned); the "
        f"earlier search's median best {statistics.median(r['earlier_best'] for r in results['warm']):.4f}"
    )
    print(
        f"- target: val_acc >= {target:.4f}, random search's median final best (the recording's best config: "
        f"{max(max((v for v in c.values if not math.isnan(v)), default=0) for c in curves.values()):.4f})\n"
    )

    rng = np.random.default_rng(0)
    picks = rng.integers(0, n_seeds, (RESAMPLES, n_seeds))  # the same resampled seeds for every method
    boot = {m: np.median(times[m][picks], axis=1) for m in METHODS}
    base = np.median(times["random"])
    print(
        "| method | median s to target | 90 % interval | / random | 90 % interval | reached | trials | epochs "
        "| stopped | recording used up | median final best |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in METHODS:
        lower = ">= " if censored(times[m], missed[m]) else ""
        med, (lo, hi) = np.median(times[m]), np.percentile(boot[m], [5, 95])
        vs_random, (rlo, rhi) = med / base, np.percentile(boot[m] / boot["random"], [5, 95])
        rs = results[m]
        best = statistics.median(max((v for _, v in r["events"]), default=math.nan) for r in rs)
        print(
            f"| {LABELS[m]} | {lower}{med:.4g} | {lo:.4g} to {hi:.4g} | {lower}{vs_random:.2f}x | {rlo:.2f}x to "
            f"{rhi:.2f}x | {int((~missed[m]).sum())} of {n_seeds} | {statistics.mean(r['trials'] for r in rs):.1f} "
            f"| {statistics.mean(r['epochs'] for r in rs):.0f} | {statistics.mean(r['stopped'] for r in rs):.1f} "
            f"| {sum(r['exhausted'] for r in rs)} of {n_seeds} | {best:.4f} |"
        )
    print(
        "\n(trials, epochs, stopped: means per search; a seed that misses the target counts its whole budget, and "
        "a median it decides is a lower bound, >=; the warm start's clock and trials are its own search's)\n"
    )

    def ratio(m: str, of: str, name: str, goal: float | None) -> None:
        mark = bound(censored(times[m], missed[m]), censored(times[of], missed[of]))
        r, (rlo, rhi) = np.median(times[m]) / np.median(times[of]), np.percentile(boot[m] / boot[of], [5, 95])
        wanted = f"; goal <= {goal}x with the interval below 1" if goal else ""
        print(f"{name}, median time to target: {mark}{r:.2f}x (90 % interval {rlo:.2f}x to {rhi:.2f}x{wanted})")

    ratio("TPE+ASHA", "random", "TPE+ASHA / random", GOALS["TPE+ASHA"])
    ratio("priors", "random", "tunelab default + priors / random", GOALS["priors"])
    ratio("priors", "TPE+ASHA", "tunelab default + priors / without priors", None)
    ratio("warm", "TPE+ASHA", "warm start / cold start (tunelab default)", WARM_GOAL)
    if show_priors:
        print(f"\n{priors_yaml(priors_path, prior_header, prior_sessions, priors)}", end="")


if __name__ == "__main__":
    main()
