"""Does tunelab's search find a good config sooner than the obvious alternative, random search run to the end?

Two methods on search_spaces/fashion_cnn_quick.yaml (the demo's space), the same number of trials, epochs, data
subset and concurrency, each with the same sampler seeds (``--seed``, which also seeds the trials' training):

- **TPE + ASHA**: the file as it is (``method: bayes``, Optuna TPE; ``early_terminate: hyperband``, ASHA), or
  with other ASHA rungs (``--asha MIN_ITER,ETA``, written like the random variant).
- **random**: the same file with ``method: random`` and no ``early_terminate`` (a temporary YAML written from the
  loaded file), so every trial trains all its epochs.

Both run through the real ``tunelab search`` (``cli.main`` in this process, one search after another) with
``--wandb disabled``: W&B's cost is bench/overhead.py's subject, and it would cost both methods the same.

The clock: every epoch of every trial is a row of Ray's results (``leaderboard.histories``) with Ray's
``timestamp``, the wall clock of the trial's worker when the epoch's result was recorded (whole seconds, rounded
down; the driver and the workers share this machine's clock). Its time is that timestamp minus the wall clock
read just before ``cli.main`` started, so it includes Ray's start and the workers' start, which both methods pay
alike (this pulls the ratio towards 1, never away from it). The running best ``val_acc`` over all epochs in time
order reaches the target at the first epoch whose value is at least the target. The target is the median over
random search's seeds of its final best. A seed whose search never reaches the target counts its whole wall time
and the mean is then printed as a lower bound (">="); nothing is extrapolated. Both methods evaluate the file's
baseline config first, with the same seed: its value is printed, since a baseline at the target makes both fast.
So is how many of TPE's configs random search trained too (same seed): TPE samples its first
``n_startup_trials`` (tunelab.search.sampler: a quarter of the trials, at most 10) with the same random sampler.

Defaults (12 trials x 4 epochs on 10 % of the data, 2 at a time, 3 seeds) are sized for at most ~15 minutes on 2
cores.
``--quick`` (1 seed, 4 trials x 3 epochs on 2 %: 3 epochs so that ASHA is on at all, since its first rung is
epoch 2 and tunelab runs no scheduler for 2 epochs) is a smoke run whose ratio means nothing.
"""

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from tunelab import cli, data as datasets, leaderboard, runs, spaces

EXPERIMENT = "fashion_cnn_quick"
GOAL = 0.5  # time to target of TPE + ASHA / random (issue 12)


def variant(folder: Path, method: str, early_terminate: dict | None) -> Path:
    """The experiment's file with another method and early stopping (None: none), written from the loaded file."""
    raw = yaml.safe_load(spaces.find(EXPERIMENT).read_text())
    raw["method"] = method
    raw.pop("early_terminate", None)
    if early_terminate:
        raw["early_terminate"] = early_terminate
    path = folder / f"{EXPERIMENT}_{method}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    spaces.load(str(path))  # validated as `tunelab search` will
    return path


def search(experiment: str, name: str, seed: int, args, root: Path, results: Path) -> dict:
    """One `tunelab search`; every epoch's (seconds since the command started, metric) in time order."""
    argv = ["--data-dir", str(root), "--results-dir", str(results), "search", experiment, "--name", name,
            "--seed", str(seed), "--trials", str(args.trials), "--max-epochs", str(args.epochs),
            "--subset", str(args.subset), "--concurrency", str(args.concurrency), "--wandb", "disabled"]  # fmt: skip
    out = io.StringIO()
    start = time.time()
    with contextlib.redirect_stdout(out):
        rc = cli.main(argv)
    wall = time.time() - start
    if rc != 0:
        raise SystemExit(f"tunelab search {experiment} failed ({rc}):\n{out.getvalue()}")
    run = runs.open_run(name, results)
    metric, sign = run.spec.metric, 1 if run.spec.mode == "max" else -1
    histories = leaderboard.histories(run)
    events = sorted((float(t) - start, float(v)) for df in histories.values() if metric in df
                    for t, v in zip(df["timestamp"], df[metric]) if v == v)  # fmt: skip
    board = leaderboard.table(run)
    return {"wall": wall, "events": events, "sign": sign, "best": max((sign * v for _, v in events), default=None),
            "epochs": len(events), "trials": len(board), "baseline": baseline_value(run, board),
            "configs": {tuple(sorted((k, round(v, 9) if isinstance(v, float) else v) for k, v in
                                     run.config_of(row).items())) for _, row in board.iterrows()},
            "stopped": int((board["status"] == "stopped early").sum()) if len(board) else 0}  # fmt: skip


def baseline_value(run: runs.Run, board) -> float | None:
    """The metric of the trial that trained the file's baseline config (both methods evaluate it first)."""
    want = run.spec.config(run.spec.baseline or {})
    for _, row in board.iterrows():
        config = run.config_of(row)
        if all(config[k] == v or (isinstance(v, float) and abs(config[k] - v) <= 1e-9 * abs(v))
               for k, v in want.items()):
            return float(row[run.spec.metric])
    return None


def time_to(result: dict, target: float) -> float | None:
    """Seconds until the running best first reaches the target, None if it never does."""
    sign = result["sign"]
    return next((t for t, v in result["events"] if sign * v >= sign * target), None)


def hyperband(text: str) -> dict:
    """``--asha MIN_ITER,ETA`` as the file's early_terminate."""
    try:
        min_iter, eta = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN_ITER,ETA (two whole numbers, e.g. 1,3)") from None
    return {"type": "hyperband", "min_iter": min_iter, "eta": eta}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 4 trials x 3 epochs on 2 %% of the data: a smoke run")
    p.add_argument("--seeds", type=int, help="sampler seeds 0..S-1 per method (default 3, --quick 1)")
    p.add_argument("--trials", type=int, help="trials per search (default 12, --quick 4)")
    p.add_argument("--epochs", type=int, help="epochs per trial (default 4, --quick 3)")
    p.add_argument("--subset", type=float, help="fraction of the data (default 0.1, --quick 0.02)")
    p.add_argument("--concurrency", type=int, default=2, help="trials at once (default 2), 1 CPU each (the file's)")
    p.add_argument("--asha", metavar="MIN_ITER,ETA", type=hyperband, help="TPE+ASHA with this early_terminate "
                   "instead of the file's, e.g. 1,3: rungs at epochs 1, 3, 9, ...")
    args = p.parse_args()
    quick = args.quick
    seeds = range(args.seeds or (1 if quick else 3))
    args.trials = args.trials or (4 if quick else 12)
    args.epochs = args.epochs or (3 if quick else 4)
    args.subset = args.subset or (0.02 if quick else 0.1)
    root = datasets.data_root()
    print(f"{EXPERIMENT}: {args.trials} trials x {args.epochs} epochs on {args.subset:.0%} of the data, "
          f"{args.concurrency} at a time, seeds {', '.join(map(str, seeds))}, W&B disabled; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}{' (--quick: a smoke run, its ratio means nothing)' if quick else ''}")

    results: dict[str, list[dict]] = {"TPE+ASHA": [], "random": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        experiments = {"TPE+ASHA": EXPERIMENT, "random": str(variant(folder, "random", None))}
        if args.asha:
            experiments["TPE+ASHA"] = str(variant(folder, "bayes", args.asha))
        asha = args.asha or spaces.load(EXPERIMENT).hyperband
        rungs = spaces.asha_rungs(asha["min_iter"], asha["eta"], args.epochs)
        print(f"TPE+ASHA's rungs: epochs {', '.join(map(str, rungs))}")
        for seed in seeds:  # the methods alternate, so that a burst of load elsewhere hits both alike
            for method, experiment in experiments.items():
                r = search(experiment, f"{method.replace('+', '_')}-{seed}", seed, args, root, folder)
                results[method].append(r)
                print(f"  {method:8s} seed {seed}: {r['wall']:5.0f} s, {r['epochs']:3d} epochs in {r['trials']} trials "
                      f"({r['stopped']} stopped early), best val_acc {r['sign'] * r['best']:.4f}", flush=True)

    sign = results["random"][0]["sign"]
    target = sign * statistics.median_low(r["best"] for r in results["random"])  # a value random search reached
    baselines = ", ".join("?" if r["baseline"] is None else f"{r['baseline']:.4f}" for r in results["random"])
    print(f"\ntarget: val_acc >= {target:.4f}, the median over seeds of random search's final best; the file's "
          f"baseline config, which both methods train first, reached {baselines} (per seed)\n")  # fmt: skip
    print("| method   | seed | wall s | epochs | final best | s to target | configs also in random's |")
    print("|----------|-----:|-------:|-------:|-----------:|------------:|-------------------------:|")
    means, missed = {}, {}
    for method, rs in results.items():
        times = [time_to(r, target) for r in rs]
        for seed, r, t, rnd in zip(seeds, rs, times, results["random"]):
            shown = f"{t:11.0f}" if t is not None else f"{'never':>11s}"
            same = f"{len(r['configs'] & rnd['configs'])} of {len(r['configs'])}"
            print(f"| {method:8s} | {seed:4d} | {r['wall']:6.0f} | {r['epochs']:6d} | {sign * r['best']:10.4f} "
                  f"| {shown} | {same:>24s} |")
        means[method] = statistics.mean(r["wall"] if t is None else t for r, t in zip(rs, times))
        missed[method] = sum(t is None for t in times)
    print()
    for method, mean in means.items():
        n = len(results[method])
        print(f"{method:8s}: mean time to target {'>= ' if missed[method] else ''}{mean:.0f} s (reached in "
              f"{n - missed[method]} of {n} seeds; a miss counts its search's whole wall time), mean wall "
              f"{statistics.mean(r['wall'] for r in results[method]):.0f} s, mean epochs "
              f"{statistics.mean(r['epochs'] for r in results[method]):.0f}")  # fmt: skip
    # a miss makes that method's mean a lower bound: of the ratio's denominator (random) an upper bound of the ratio
    bound = {(0, 0): "", (1, 0): ">= ", (0, 1): "<= "}.get((min(missed["TPE+ASHA"], 1), min(missed["random"], 1)), "~")
    note = {"": "", ">= ": " (a lower bound: TPE+ASHA missed the target in some seed)",
            "<= ": " (an upper bound: random search missed the target in some seed, as its worst seed must)",
            "~": " (both missed the target in some seed: neither bound holds)"}[bound]  # fmt: skip
    ratio = means["TPE+ASHA"] / means["random"]
    print(f"\nTPE+ASHA / random, time to target: {bound}{ratio:.2f}x (goal <= {GOAL}x){note}")
    print(f"load average after: {os.getloadavg()[0]:.1f} (other processes on these CPUs slow every search unevenly)")


if __name__ == "__main__":
    main()
