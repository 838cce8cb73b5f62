"""tunelab's per-trial overhead: the real `tunelab search` against a plain Optuna loop that trains the same configs.

Both run N short trials of search_spaces/fashion_cnn.yaml (its baseline config first, then its TPE sampler with
the file's seed) on the same subset of Fashion-MNIST and train each trial with the same
tunelab.trainable.training.epoch. What differs is everything around the training: tunelab starts Ray, runs the trials in
Ray worker processes (reused from trial to trial, each loading the data once), checkpoints every epoch, logs to W&B from
the driver and writes the leaderboard; the plain loop loads the data once and calls the objective. Two cases:

- **One at a time.** ``tunelab search --concurrency 1 --cpus-per-trial 2`` (2 torch threads) against Optuna's
  ``study.optimize`` in this process with 2 torch threads. tunelab runs as a user runs it: W&B in its default
  mode, which is offline here (a temporary HOME without ~/.netrc, no WANDB_API_KEY, results in a temporary
  folder); the plain loop has no W&B. The same search with ``--wandb disabled`` runs too: the difference of the
  two is what W&B costs per trial. Both loops sample the same configs (checked and printed).
- **Two at once on 2 cores.** ``tunelab search --concurrency 2 --cpus-per-trial 1`` against two plain Optuna
  workers: two processes forked from this one after it loaded the data (no imports, no data load of their own),
  each with 1 torch thread, sharing one study in a journal file (Optuna's documented way to run workers in
  parallel). Not ``study.optimize(n_jobs=2)``: its threads share one process, so they share torch's thread
  setting and contend for the GIL between ops, which would make the baseline slower than it has to be. The
  plain workers train the very configs tunelab's search sampled (enqueued in their study), since concurrent TPE
  samples depend on which trials have finished; sampling itself takes milliseconds.

The training time of a trial is the sum of its epochs' ``epoch_s`` (training + validation, which tunelab reports
per epoch and the plain loop measures the same way). Overhead per trial is counted in trial-slot seconds:
(wall x concurrency - training) / N, which for one at a time is (wall - training) / N. Absolute seconds on a
shared machine mean little; the ratio and the per-trial overheads of one run are what to read. ``--quick`` is a
smoke run (2 trials on 2 % of the data).
"""

import argparse
import contextlib
import io
import multiprocessing
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Literal

import optuna
import optuna.distributions as od
import pandas as pd
import ray
import torch
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from ray import tune

from tunelab import cli, data as datasets
from tunelab.engine import cluster, search as engine
from tunelab.spec import spaces
from tunelab.store import leaderboard, runs
from tunelab.trainable import protocol, training

EXPERIMENT = "fashion_cnn"
GOAL = 1.2  # tunelab wall / plain wall, one at a time (issue 12)
FIT = "Tuner.fit (the trials)"
ISOLATED = ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "RAY_ADDRESS")  # a new user's shell has none of them


def suggest(trial: optuna.Trial, name: str, dist: od.BaseDistribution):
    if isinstance(dist, od.CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, od.IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, od.FloatDistribution)  # the last kind a space has
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def config_key(config: dict) -> tuple:
    return tuple(sorted((k, round(v, 9) if isinstance(v, float) else v) for k, v in config.items()))


def objective(spec: spaces.Spec, data: datasets.Data):
    """Optuna's objective: build the trainable, train spec.max_epochs epochs; the epochs' seconds go in a user attr."""
    module = protocol.load_trainable(spec.trainable)

    def run(trial: optuna.Trial) -> float:
        config = spec.config({name: suggest(trial, name, d) for name, d in spec.params.items()})
        parts = training.build(module, config, data, spec.seed)
        seconds = 0.0
        for _ in range(config["epochs"]):
            metrics = training.epoch(module, parts, data, config, "val")
            seconds += metrics["epoch_s"]
        trial.set_user_attr("epoch_s", seconds)
        return metrics[spec.metric]

    return run


def _plain_worker(storage_path: str, spec: spaces.Spec, data: datasets.Data, n: int) -> None:
    """One forked plain worker: 1 torch thread, trials from the shared study until n have started."""
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name="plain", storage=JournalStorage(JournalFileBackend(storage_path)),
                              sampler=engine.sampler(spec))  # fmt: skip
    started = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    study.optimize(objective(spec, data), callbacks=[optuna.study.MaxTrialsCallback(n, states=started)])


def plain_loop(
    spec: spaces.Spec, root: Path, subset: float, workers: int = 1, configs: list[dict] | None = None
) -> dict:
    """Optuna's own loop: data loaded once, then spec.run_cap trials, the baseline first (or ``configs``, in order).
    One worker: this process with 2 torch threads. More: forked processes of 1 thread each on one journal study."""
    start = time.perf_counter()
    torch.set_num_threads(2 if workers == 1 else 1)
    data = datasets.load_dataset(spec.dataset, root, "search", subset, training.device())
    loaded = time.perf_counter() - start
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # group=True, as tunelab
    direction: Literal["maximize", "minimize"] = "maximize" if spec.mode == "max" else "minimize"
    with tempfile.TemporaryDirectory() as tmp:
        journal = str(Path(tmp) / "study.log")
        storage = JournalStorage(JournalFileBackend(journal)) if workers > 1 else None
        study = optuna.create_study(
            study_name="plain", storage=storage, direction=direction, sampler=engine.sampler(spec)
        )
        for config in configs or ([spec.baseline] if spec.baseline else []):  # as tunelab queues it
            study.enqueue_trial(config)
        if workers == 1:
            study.optimize(objective(spec, data), n_trials=spec.run_cap)
        else:
            fork = multiprocessing.get_context("fork")  # the children share the loaded data and the imports
            work = (journal, spec, data, spec.run_cap)
            procs = [fork.Process(target=_plain_worker, args=work) for _ in range(workers)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            if any(p.exitcode for p in procs):
                raise SystemExit(f"a plain worker failed (exit codes {[p.exitcode for p in procs]})")
        trials = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(trials) != spec.run_cap:
        raise SystemExit(f"the plain loop completed {len(trials)} trials, not {spec.run_cap}")
    return {"wall": time.perf_counter() - start, "training": sum(t.user_attrs["epoch_s"] for t in trials),
            "data load": loaded, "configs": [t.params for t in trials]}  # fmt: skip


@contextlib.contextmanager
def timed(owner, attr: str, into: dict, label: str):
    """Time every call of owner.attr (summed under label) while the block runs. An attribute the engine no longer
    has is reported under label as missing instead of breaking the bench."""
    original = getattr(owner, attr, None)
    if original is None:
        into[label] = f"not timed: {getattr(owner, '__name__', owner)}.{attr} not found"
        yield
        return

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into[label] = into.get(label, 0.0) + time.perf_counter() - start

    setattr(owner, attr, wrapper)
    try:
        yield
    finally:
        setattr(owner, attr, original)


@contextlib.contextmanager
def new_user(home: Path):
    """The environment of a new user: a HOME without W&B credentials, none of ISOLATED set; restored afterwards
    (Ray and W&B read some of them). Every search of one
    process must get the same HOME: Ray reads the token in ~/.ray/auth_token once per process."""
    saved = dict(os.environ)
    home.mkdir(parents=True, exist_ok=True)
    for var in ISOLATED:
        os.environ.pop(var, None)
    os.environ["HOME"] = str(home)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def tunelab_search(root: Path, results: Path, name: str, n: int, epochs: int, subset: float, concurrency: int,
                   cpus: float, wandb: str | None = None) -> dict:  # fmt: skip
    """`tunelab search` in this process, as the CLI runs it (``wandb``: None for its default mode); Ray's start
    and stop, the fit and the leaderboard are timed apart."""
    argv = ["--data-dir", str(root), "--results-dir", str(results), "search", EXPERIMENT, "--name", name,
            "--trials", str(n), "--max-epochs", str(epochs), "--subset", str(subset),
            "--concurrency", str(concurrency), "--cpus-per-trial", f"{cpus:g}"]  # fmt: skip
    argv += ["--wandb", wandb] if wandb else []
    parts: dict[str, float | str] = {}
    out = io.StringIO()
    with (new_user(results / "home"), timed(cluster, "init", parts, "Ray start (cluster.init)"),
          timed(tune.Tuner, "fit", parts, FIT), timed(ray, "shutdown", parts, "Ray stop (ray.shutdown)"),
          timed(leaderboard, "write", parts, "leaderboard.write"), contextlib.redirect_stdout(out)):  # fmt: skip
        datasets.forget()  # the trials read the files in their workers; so does the driver's check
        start = time.perf_counter()
        rc = cli.main(argv)
        wall = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"tunelab search failed ({rc}):\n{out.getvalue()}")
    timed_total = sum(v for v in parts.values() if isinstance(v, float))
    parts["the rest (checks, imports, Tuner set-up, the CLI's leaderboard print)"] = wall - timed_total
    run = runs.open_run(name, results)
    histories = leaderboard.histories(run)
    starts = {t: df["timestamp"].iloc[0] - df["time_total_s"].iloc[0] for t, df in histories.items() if len(df)}
    rows = sorted(leaderboard.table(run).to_dict("records"), key=lambda r: starts.get(r["trial_id"], 0))
    configs = [runs.sampled(pd.Series(row)) for row in rows]
    return {"wall": wall, "training": sum(df["epoch_s"].sum() for df in histories.values()), "parts": parts,
            "in trials": sum(df["time_total_s"].iloc[-1] for df in histories.values() if len(df)),
            "configs": configs, "trials": len(rows), "concurrency": concurrency,
            "workers": len({p for df in histories.values() if "worker_pid" in df for p in df["worker_pid"]}),
            "wandb runs": len(list((run.dir / "wandb").glob("offline-run-*")))}  # fmt: skip


def table(rows: dict[str, dict], n: int, k: int) -> None:
    print("| loop                               | wall s | wall s/trial | training s | overhead slot-s/trial |")
    print("|------------------------------------|-------:|-------------:|-----------:|----------------------:|")
    for name, r in rows.items():
        wall, train = r["wall"], r["training"]
        print(f"| {name:34s} | {wall:6.1f} | {wall / n:12.2f} | {train:10.1f} | {(wall * k - train) / n:21.2f} |")


def where(tl: dict, n: int) -> None:
    """Where a tunelab search's wall time goes; per-trial figures in trial-slot seconds."""
    k = tl["concurrency"]
    print(
        f"tunelab ({n} trials, {k} at a time, in {tl['workers'] or '?'} worker process(es)), where its wall time goes:"
    )
    for label, seconds in tl["parts"].items():
        print(f"  {label:70s} {seconds:6.1f} s" if isinstance(seconds, float) else f"  {label:70s} {seconds}")
    fit = tl["parts"].get(FIT)
    print(f"  {'per trial, in its trial function but not in epoch_s (data, build, checkpoints)':70s} "
          f"{(tl['in trials'] - tl['training']) / n:6.2f} s")  # fmt: skip
    if isinstance(fit, float):
        print(f"  {'per trial, in Tuner.fit but not in a trial function (worker start, Tune, W&B)':70s} "
              f"{(fit * k - tl['in trials']) / n:6.2f} slot-s")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 trials on 2 %% of the data: a smoke run")
    p.add_argument("--trials", type=int, help="N (default 8, --quick 2)")
    p.add_argument("--epochs", type=int, default=1, help="epochs per trial (default 1)")
    p.add_argument("--subset", type=float, help="fraction of the data (default 0.05, --quick 0.02)")
    args = p.parse_args()
    n = args.trials or (2 if args.quick else 8)
    subset = args.subset or (0.02 if args.quick else 0.05)
    epochs = args.epochs
    root = datasets.data_root()
    print(f"{n} trials of {EXPERIMENT} x {epochs} epoch(s) on {subset:.0%} of the data, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}, Ray {ray.__version__}")  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        # one at a time: 2 threads per trial
        options = runs.Options(trials=n, max_epochs=epochs, cpus_per_trial=2, subset=subset)
        spec = options.apply(spaces.load_spec(EXPERIMENT))
        datasets.forget()
        plain = plain_loop(spec, root, subset)
        offline = tunelab_search(root, results, "one-offline", n, epochs, subset, 1, 2)
        disabled = tunelab_search(root, results, "one-disabled", n, epochs, subset, 1, 2, wandb="disabled")
        # two at once on 2 cores: 1 thread per trial
        two = tunelab_search(root, results, "two-offline", n, epochs, subset, 2, 1)
        options2 = runs.Options(trials=n, max_epochs=epochs, cpus_per_trial=1, subset=subset)
        spec2 = options2.apply(spaces.load_spec(EXPERIMENT))
        datasets.forget()
        plain2 = plain_loop(spec2, root, subset, workers=2, configs=two["configs"])

    print(f"\n## One at a time (2 torch threads per trial; plain: Optuna in one process, data loaded once in "
          f"{plain['data load']:.1f} s)")  # fmt: skip
    same = sorted(map(config_key, plain["configs"])) == sorted(map(config_key, offline["configs"]))
    print(f"same {n} configs sampled by both: {'yes' if same else 'NO (training times differ by config)'}; "
          f"W&B offline runs written by the default search: {offline['wandb runs']} (of {n})\n")  # fmt: skip
    table({"plain Optuna": plain, "tunelab search (W&B offline)": offline, "tunelab search --wandb disabled": disabled},
          n, 1)  # fmt: skip
    # the same epochs train at different speeds in different runs while other processes share the CPUs
    at_plain = (offline["wall"] - offline["training"] + plain["training"]) / plain["wall"]
    print(f"\ntunelab wall / plain wall: {offline['wall'] / plain['wall']:.2f}x (goal <= {GOAL}x; "
          f"{at_plain:.2f}x at the plain loop's training time)")  # fmt: skip
    print(f"without W&B (--wandb disabled): {disabled['wall'] / plain['wall']:.2f}x; W&B offline costs "
          f"{(offline['wall'] - disabled['wall']) / n:.2f} s per trial "
          f"({(offline['wall'] - offline['training'] - disabled['wall'] + disabled['training']) / n:.2f} s outside "
          "the epochs)\n")  # fmt: skip
    where(offline, n)

    print("\n## Two at once on 2 cores (1 torch thread per trial; plain: 2 forked Optuna workers on one journal "
          "study, training tunelab's configs)\n")  # fmt: skip
    table({"plain Optuna, 2 processes": plain2, "tunelab search (W&B offline)": two}, n, 2)
    at_plain2 = (two["wall"] - two["training"] / 2 + plain2["training"] / 2) / plain2["wall"]
    print(f"\ntunelab wall / plain wall, 2 at once: {two['wall'] / plain2['wall']:.2f}x "
          f"({at_plain2:.2f}x at the plain workers' training time)\n")  # fmt: skip
    where(two, n)
    print(f"\nload average after: {os.getloadavg()[0]:.1f} (other processes on these CPUs slow every run unevenly)")


if __name__ == "__main__":
    main()
