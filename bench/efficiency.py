"""Does tunelab's default search reach a good config sooner than random search run to the end, on the wall clock?

Real searches, every method with the same wall-clock budget T per search.

Experiments: ``fashion_cnn`` (the wide space) and ``weather_cnn`` (of the text experiments, the cheapest to calibrate
and plan on the shared data). For each seed (``--seed``, which seeds the sampler and the trials), one search at a
time, in this order:

- **TPE+ASHA**, tunelab's default: ``tunelab search EXP --time-budget T --seed S`` as a user runs it (calibration,
  which counts in T, the planned trials, epochs, rungs, data fraction and concurrency, Optuna TPE, ASHA, and the
  retrain-budget ceiling, T by default, that skips configs whose retrain would exceed it). Its plan is read back
  from the run and printed.
- **random**: the same file with ``method: random``, no ``early_terminate`` and ``time_budget_s: T`` (a hard stop,
  no planning), written to a temporary YAML, run with that seed's planned ``--subset``, ``--max-epochs`` and
  ``--concurrency`` and ``--trials 200`` (more than fit): every trial trains all its epochs until T stops the search.
- **TPE**: the same with ``method: bayes`` (TPE without stopping, nor the ceiling).

Each search is the ``tunelab`` command in a subprocess (``python -m tunelab``) with ``--wandb disabled`` (W&B's cost
is bench/overhead.py's subject). The clock: every epoch of every trial is a row of Ray's results with Ray's
``timestamp`` (the worker's wall clock, whole seconds rounded down); its time is that minus the wall clock read just
before the command started, so the interpreter's and Ray's start count for every method (this pulls the ratios
towards 1). The target, per experiment, is the median over random search's seeds of its final best (a value it
reached). A search's time to target is the time of the first epoch whose value reaches it; a search that never
does counts its whole wall time, and a median that such a seed decides is a lower bound (">="). Printed per
experiment: each method's median time to target, its ratio to random search's, and a bootstrap 90 % interval of
the ratio (seeds resampled together, as bench/replay.py does).

Caveats: a handful of seeds on a busy machine is noisy (the load average is printed at the start and the end, and
calibration, thus the plan, varies with the load); the default runs first in each seed, since the others take its
plan; with a small T the retrain ceiling may confine the default to the space's cheapest configs (its plan's second
line says so) while the others sample the whole space.

The budget decides what this can show: at T = 100 s on 2 cores random search reaches its median final best in its
first trials, before the default's calibration and queued configs are done, so the ratio measures fixed costs;
bench/replay.py puts TPE + ASHA's gain at budgets of 10 or more random trials (T = 300 s or more here).

Defaults: T = 100 s, 3 seeds, two experiments: 18 searches of about 2 minutes, ~35 minutes on 2 cores.
``--methods random`` leaves TPE out (a third less time).
``--quick`` (1 seed, T = 30 s, fashion_cnn only, ``--subset 0.02`` for every method, ``--retrain-budget 1h`` for
the default, whose ceiling at T = 30 s would admit only the cheapest configs) is a smoke run whose ratios mean
nothing.
"""

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from replay import RESAMPLES, censored  # bench/replay.py, beside this file

from tunelab import data as datasets
from tunelab.cli import _duration
from tunelab.spec import spaces
from tunelab.store import leaderboard, runs

EXPERIMENTS = ("fashion_cnn", "weather_cnn")
METHODS = ("TPE+ASHA", "random", "TPE")  # the default first: the others take its plan
GOAL = 0.7  # time to target of tunelab's default / random search's (issue 28, real runs)
BUDGET_S, QUICK_BUDGET_S, QUICK_SUBSET = 100.0, 30.0, 0.02
QUICK_RETRAIN_BUDGET_S = 3600.0  # at T = 30 s the retrain ceiling would admit only the cheapest configs
TRIALS = 200  # the variants' --trials: more than fit in T, which stops them


def variant(folder: Path, experiment: str, method: str, budget_s: float) -> Path:
    """The experiment's file with ``method``, no early stopping and a hard stop at ``budget_s``."""
    raw = yaml.safe_load(spaces.find(experiment).read_text())
    raw["method"] = method
    raw.pop("early_terminate", None)
    raw["time_budget_s"] = budget_s
    path = folder / f"{experiment}_{method}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    spaces.load_spec(str(path))  # validated as `tunelab search` will
    return path


def search(experiment: str, name: str, seed: int, flags: list[str], root: Path, results: Path) -> dict:
    """One `tunelab search` in a subprocess; every epoch's (seconds since the command started, metric) in time
    order, and what it ran."""
    argv = [sys.executable, "-m", "tunelab", "--data-dir", str(root), "--results-dir", str(results), "search",
            experiment, "--name", name, "--seed", str(seed), "--wandb", "disabled", *flags]  # fmt: skip
    start = time.time()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.time() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    run = runs.open_run(name, results)
    metric, sign = run.spec.metric, 1 if run.spec.mode == "max" else -1
    events = sorted((float(t) - start, float(v)) for df in leaderboard.histories(run).values() if metric in df
                    for t, v in zip(df["timestamp"], df[metric]) if v == v)  # fmt: skip
    board = leaderboard.table(run)
    return {"wall": wall, "events": events, "sign": sign, "metric": metric, "plan": run.plan,
            "best": max((sign * v for _, v in events), default=None), "epochs": len(events), "trials": len(board),
            "stopped": int((board["status"] == "stopped early").sum()) if len(board) else 0}  # fmt: skip


def time_to(result: dict, target: float) -> float | None:
    """Seconds until the running best first reaches the target, None if it never does."""
    sign = result["sign"]
    return next((t for t, v in result["events"] if sign * v >= sign * target), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"1 seed, T = {QUICK_BUDGET_S:.0f} s, fashion_cnn with --subset {QUICK_SUBSET}: a smoke run",
    )
    p.add_argument(
        "--budget",
        type=_duration,
        metavar="T",
        help=f"every search's wall-clock budget (90s, 2m; default {BUDGET_S:.0f} s, --quick {QUICK_BUDGET_S:.0f} s)",
    )
    p.add_argument("--seeds", type=int, help="seeds 0..S-1 per method (default 3, --quick 1)")
    p.add_argument(
        "--experiments", nargs="+", metavar="EXP", help=f"default {' '.join(EXPERIMENTS)}, --quick {EXPERIMENTS[0]}"
    )
    p.add_argument(
        "--subset",
        type=float,
        metavar="F",
        help=f"every method's data fraction (default: the plan's; --quick {QUICK_SUBSET})",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        choices=METHODS,
        metavar="M",
        help=f"of {', '.join(METHODS)} (default all; tunelab's default always runs: the others take its plan)",
    )
    p.add_argument(
        "--retrain-budget",
        type=_duration,
        metavar="T",
        help="tunelab's default's --retrain-budget (default: none, so T; --quick 1h)",
    )
    args = p.parse_args()  # fmt: skip
    quick = args.quick
    budget = args.budget or (QUICK_BUDGET_S if quick else BUDGET_S)
    seeds = range(args.seeds or (1 if quick else 3))
    experiments = args.experiments or (EXPERIMENTS[:1] if quick else EXPERIMENTS)
    methods = [m for m in METHODS if m == METHODS[0] or not args.methods or m in args.methods]
    if "random" not in methods:
        p.error("--methods: random search is the baseline of every ratio")
    subset = args.subset or (QUICK_SUBSET if quick else None)
    root = datasets.data_root()
    smoke = " (--quick: a smoke run, its ratios mean nothing)" if quick else ""
    print(f"# Search efficiency on the wall clock, {datetime.datetime.now():%Y-%m-%d %H:%M}{smoke}\n")
    print(
        f"- {', '.join(experiments)}; T = {budget:.0f} s per search; seeds {', '.join(map(str, seeds))}; one search "
        f"at a time, W&B disabled; data fraction {'planned' if subset is None else subset}"
    )
    print(
        f"- {os.cpu_count()} CPUs, load average at the start {'/'.join(f'{x:.1f}' for x in os.getloadavg())} "
        "(1, 5, 15 min)",
        flush=True,
    )
    retrain_budget = args.retrain_budget or (QUICK_RETRAIN_BUDGET_S if quick else None)
    default = ["--time-budget", str(budget)] + (["--subset", str(subset)] if subset else []) + (
        ["--retrain-budget", str(retrain_budget)] if retrain_budget else [])  # fmt: skip

    results: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for experiment in experiments:
            print(f"\n## {experiment}\n", flush=True)
            files = {"random": variant(folder, experiment, "random", budget),
                     "TPE": variant(folder, experiment, "bayes", budget)}  # fmt: skip
            results[experiment] = {m: [] for m in methods}
            for seed in seeds:
                for method in methods:
                    if method == "TPE+ASHA":
                        r = search(experiment, f"{experiment}-default-{seed}", seed, default, root, folder)
                        plan = r["plan"]
                        print("\n".join(f"  seed {seed}: {line}" for line in plan.lines()))
                        planned = ["--subset", str(plan.subset), "--max-epochs", str(plan.max_epochs),
                                   "--concurrency", str(plan.concurrency), "--trials", str(TRIALS)]  # fmt: skip
                    else:
                        r = search(str(files[method]), f"{experiment}-{method}-{seed}", seed, planned, root, folder)
                    results[experiment][method].append(r)
                    best = "none" if r["best"] is None else f"{r['sign'] * r['best']:.4f}"
                    print(
                        f"  {method:8s} seed {seed}: {r['wall']:4.0f} s, {r['trials']:3d} trials, {r['epochs']:3d} "
                        f"epochs ({r['stopped']} stopped early), best {r['metric']} {best}",
                        flush=True,
                    )
            report(experiment, results[experiment], seeds, quick)
    print(
        f"\nload average at the end {'/'.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min; other "
        "processes on these CPUs slow every search unevenly)"
    )


def report(experiment: str, results: dict[str, list[dict]], seeds: range, quick: bool) -> None:
    """The experiment's table and ratios."""
    first = results["random"][0]
    sign, metric = first["sign"], first["metric"]
    finals = [r["best"] for r in results["random"] if r["best"] is not None]
    if not finals:
        print(f"\nrandom search recorded no {metric} in any seed: no target (T too small?)")
        return
    target = sign * statistics.median_low(finals)  # a value random search reached
    times, missed = {}, {}
    for m, rs in results.items():
        found = [time_to(r, target) for r in rs]
        times[m] = np.array([r["wall"] if t is None else t for r, t in zip(rs, found)])
        missed[m] = np.array([t is None for t in found])
    n = len(seeds)
    picks = np.random.default_rng(0).integers(0, n, (RESAMPLES, n))  # the same resampled seeds for every method
    boot = {m: np.median(times[m][picks], axis=1) for m in results}
    base = np.median(times["random"])

    print(f"\ntarget: {metric} {'>=' if sign > 0 else '<='} {target:.4f}, random search's median final best\n")
    print("| method | seed | wall s | trials | epochs | stopped early | final best | s to target |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for m, rs in results.items():
        for seed, r, t, miss in zip(seeds, rs, times[m], missed[m]):
            best = "none" if r["best"] is None else f"{sign * r['best']:.4f}"
            print(
                f"| {m} | {seed} | {r['wall']:.0f} | {r['trials']} | {r['epochs']} | {r['stopped']} | {best} "
                f"| {'never' if miss else f'{t:.0f}'} |"
            )
    print(f"\nrandom: median time to target {base:.0f} s")
    for m in [m for m in ("TPE+ASHA", "TPE") if m in results]:
        lower = ">= " if censored(times[m], missed[m]) else ""
        ratio, (lo, hi) = np.median(times[m]) / base, np.percentile(boot[m] / boot["random"], [5, 95])
        print(
            f"{m} / random, time to target: {lower}{ratio:.2f}x ({experiment}; median {lower}"
            f"{np.median(times[m]):.0f} s vs {base:.0f} s, reached in {int((~missed[m]).sum())} of {n} seeds; "
            f"90 % interval {lo:.2f}x to {hi:.2f}x" + (f"; goal <= {GOAL}x" if m == "TPE+ASHA" else "") + ")"
        )
    if quick:
        print("(--quick: a smoke run, its ratios mean nothing)")


if __name__ == "__main__":
    main()
