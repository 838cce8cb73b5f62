"""tunelab's per-trial overhead: the real `tunelab search` against a plain in-process Optuna loop.

Both run the same N short trials of search_spaces/fashion_cnn.yaml (its baseline config first, then its TPE
sampler with the file's seed), one at a time with 2 torch threads, on the same subset of Fashion-MNIST, and
train each trial with the same tunelab.training.epoch. What differs is everything around the training: tunelab
starts Ray, runs each trial in a fresh worker process that loads the data itself, checkpoints every epoch and
writes the leaderboard; the plain loop loads the data once and calls the objective. The training time of a
trial is the sum of its epochs' ``epoch_s`` (training + validation, which tunelab reports per epoch and the plain
loop measures the same way), so overhead per trial = (wall - training) / N. Absolute seconds on a shared machine
mean little; the ratio and the per-trial overheads of one run are what to read. ``--quick`` is a smoke run.
"""

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import optuna.distributions as od
import ray
import torch
from ray import tune

import trainables
from tunelab import cli, data as datasets, leaderboard, runs, search, spaces, training

EXPERIMENT = "fashion_cnn"
IN_TRIALS = "in the trial functions (sum of Ray's time_total_s)"
IMPORTS = """import time
t = [time.perf_counter()]
for module in ("torch", "ray.tune", "matplotlib.figure", "sklearn.metrics", "tunelab.trial"):
    __import__(module)
    t.append(time.perf_counter())
print(f"torch {t[1] - t[0]:.1f} s, ray.tune {t[2] - t[1]:.1f} s, matplotlib + sklearn {t[4] - t[2]:.1f} s, "
      f"rest {t[5] - t[4]:.1f} s")
"""  # what a fresh trial worker imports, timed in a fresh process


def suggest(trial: optuna.Trial, name: str, dist: od.BaseDistribution):
    if isinstance(dist, od.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, od.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def config_key(config: dict) -> tuple:
    return tuple(sorted((k, round(v, 9) if isinstance(v, float) else v) for k, v in config.items()))


def plain_loop(spec: spaces.Spec, root: Path, subset: float) -> dict:
    """Optuna's own loop: data loaded once, each trial builds the trainable and trains spec.max_epochs epochs."""
    start = time.perf_counter()
    torch.set_num_threads(2)
    module = trainables.get(spec.trainable)
    data = datasets.load(spec.dataset, root, "search", subset, training.device())
    loaded = time.perf_counter() - start
    epoch_s = []

    def objective(trial: optuna.Trial) -> float:
        config = spec.config({name: suggest(trial, name, d) for name, d in spec.params.items()})
        parts = training.build(module, config, data, spec.seed)
        for _ in range(config["epochs"]):
            metrics = training.epoch(module, parts, data, config, "val")
            epoch_s.append(metrics["epoch_s"])
        return metrics[spec.metric]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # group=True, as tunelab
    sampler = optuna.samplers.TPESampler(seed=spec.seed, multivariate=True, group=True)
    study = optuna.create_study(direction="maximize" if spec.mode == "max" else "minimize", sampler=sampler)
    study.enqueue_trial(spec.baseline)
    study.optimize(objective, n_trials=spec.run_cap)
    return {"wall": time.perf_counter() - start, "training": sum(epoch_s), "data load": loaded,
            "configs": [t.params for t in study.trials]}  # fmt: skip


@contextlib.contextmanager
def timed(owner, attr: str, into: dict, label: str):
    """Time every call of owner.attr (summed under label) while the block runs."""
    original = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = original(*args, **kwargs)
        into[label] = into.get(label, 0.0) + time.perf_counter() - start
        return result

    setattr(owner, attr, wrapper)
    try:
        yield
    finally:
        setattr(owner, attr, original)


def tunelab_search(root: Path, results: Path, n: int, epochs: int, subset: float) -> dict:
    """`tunelab search` in this process, as the CLI runs it; Ray's start and stop and the fit are timed apart."""
    argv = ["--data-dir", str(root), "--results-dir", str(results), "search", EXPERIMENT, "--name", "bench",
            "--trials", str(n), "--max-epochs", str(epochs), "--subset", str(subset), "--concurrency", "1",
            "--cpus-per-trial", "2", "--wandb", "disabled"]  # fmt: skip
    parts: dict[str, float] = {}
    out = io.StringIO()
    start = time.perf_counter()
    with (timed(search, "_init_ray", parts, "ray start"), timed(tune.Tuner, "fit", parts, "Tuner.fit (the trials)"),
          timed(ray, "shutdown", parts, "ray shutdown"), timed(leaderboard, "write", parts, "leaderboard"),
          contextlib.redirect_stdout(out)):  # fmt: skip
        rc = cli.main(argv)
    wall = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"tunelab search failed ({rc}):\n{out.getvalue()}")
    run = runs.open_run("bench", results)
    histories = leaderboard.histories(run).values()
    parts[IN_TRIALS] = sum(df["time_total_s"].iloc[-1] for df in histories)
    rows = leaderboard.table(run).to_dict("records")
    configs = [{k.removeprefix("config/"): v for k, v in row.items() if k.startswith("config/")} for row in rows]
    return {"wall": wall, "training": sum(df["epoch_s"].sum() for df in histories), "parts": parts, "configs": configs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 trials on 2 %% of the data: a smoke run")
    p.add_argument("--trials", type=int, help="N (default 6, --quick 2)")
    p.add_argument("--epochs", type=int, default=1, help="epochs per trial (default 1)")
    p.add_argument("--subset", type=float, help="fraction of the data (default 0.05, --quick 0.02)")
    args = p.parse_args()
    n, subset = args.trials or (2 if args.quick else 6), args.subset or (0.02 if args.quick else 0.05)
    root = datasets.data_root()
    options = runs.Options(trials=n, max_epochs=args.epochs, cpus_per_trial=2, subset=subset)
    spec = options.apply(spaces.load(EXPERIMENT))  # the spec `tunelab search` runs with these options
    print(f"{n} trials of {EXPERIMENT} x {args.epochs} epoch(s) on {subset:.0%} of the data, one at a time, "
          f"2 threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")  # fmt: skip

    datasets._arrays.cache_clear()
    plain = plain_loop(spec, root, subset)
    datasets._arrays.cache_clear()  # tunelab reads the files itself too
    with tempfile.TemporaryDirectory() as results:
        tl = tunelab_search(root, Path(results), n, args.epochs, subset)

    same = sorted(map(config_key, plain["configs"])) == sorted(map(config_key, tl["configs"]))
    print(f"same {n} configs sampled by both: {'yes' if same else 'NO (training times differ by config)'}\n")
    print("| loop           | wall s | wall s/trial | training s | overhead s/trial |")
    print("|----------------|-------:|-------------:|-----------:|-----------------:|")
    for name, r in (("plain Optuna", plain), ("tunelab search", tl)):
        wall, train = r["wall"], r["training"]
        print(f"| {name:14s} | {wall:6.1f} | {wall / n:12.2f} | {train:10.1f} | {(wall - train) / n:16.2f} |")
    # the same epochs train at different speeds in the two runs while other processes share the CPUs
    at_plain_training = (tl["wall"] - tl["training"] + plain["training"]) / plain["wall"]
    print(f"\ntunelab wall / plain wall: {tl['wall'] / plain['wall']:.2f}x "
          f"({at_plain_training:.2f}x at the plain loop's training time)")
    print(f"\nplain loop: data loaded once in {plain['data load']:.1f} s; tunelab, where its wall time goes:")
    for label, seconds in tl["parts"].items():
        print(f"  {label:52s} {seconds:6.1f} s")
    fit, in_trials = tl["parts"]["Tuner.fit (the trials)"], tl["parts"][IN_TRIALS]
    print(f"  per trial, in the trial function but not in epoch_s  {(in_trials - tl['training']) / n:6.2f} s"
          "  (data load, build, checkpoints)")
    print(f"  per trial, in Tuner.fit but not in the trial function {(fit - in_trials) / n:6.2f} s"
          "  (a new worker process per trial, Tune's bookkeeping)")  # fmt: skip
    imports = subprocess.run([sys.executable, "-c", IMPORTS], capture_output=True, text=True, check=True).stdout.strip()
    print(f"imports of a fresh trial worker (measured apart): {imports}")


if __name__ == "__main__":
    main()
