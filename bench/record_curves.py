"""Records learning curves of fashion_cnn's wide space for bench/replay.py: every epoch's validation metric and
seconds of N configurations, so that searches can be replayed on a simulated clock with many seeds.

The configurations are the first ``--configs`` draws of Optuna's ``RandomSampler(seed=--seed)`` over
search_spaces/fashion_cnn.yaml's parameters (a throwaway study), completed by ``Spec.config`` as a trial's are; so
config N is the same whatever ``--configs`` is, and a recording grows or resumes by drawing the same sequence.
Each trains ``--epochs`` epochs (its learning-rate schedule spans them, as in a search with that ``max_epochs``)
with the file's training seed, on the search's data as a trial reads it (``tunelab.data.load_dataset(..., "search",
--subset)``: the first fraction of train minus the fixed validation slice, and of that slice), through the same
``tunelab.trainable.training.build`` and ``epoch`` as ``tunelab.engine.trial.run_trial``, without Ray. ``--offset F``
takes the fraction from F on instead: a recording on data that the default one never sees (where priors come from).

The clock: ``time.process_time()`` (the CPU time of the worker process) and the wall clock around each epoch
(training and validation), both stored. Workers have one torch thread each, so a quiet machine's CPU seconds are
its wall seconds, and other jobs on the machine inflate the wall time but hardly the CPU time: the replay charges
CPU seconds. ``--jobs`` workers (processes, each loading the data once) train one configuration at a time; the
rows of a configuration are appended to the CSV when it finishes, so an interrupted recording resumes where it
stopped (configurations already in the file are skipped; the file's subset, epochs and seeds must match). A
configuration whose loss diverges ends at that epoch, with an empty metric.

The CSV (``bench/curves/fashion_cnn.csv`` by default) starts with ``#`` lines: ``# recording: {json}`` (what was
recorded: subset, image counts, epochs, seeds) and one ``# session: {json}`` per run that added to it (date,
machine, CPUs, load average, command); then columns config_id, the sampled hyperparameters, epoch, val_acc,
val_loss, train_loss, cpu_s, wall_s. The last line printed is the costliest configuration's CPU seconds per epoch
over the cheapest's (what a planner's calibration must span). ``--quick`` records 3 configs x 2 epochs on 1 % of
the data into a temporary file: a smoke run.
"""

import argparse
import concurrent.futures
import csv
import dataclasses
import datetime
import json
import math
import multiprocessing
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import torch

from tunelab import data as datasets
from tunelab.spec import spaces
from tunelab.trainable import protocol, training

EXPERIMENT = "fashion_cnn"
DEFAULT_FILE = Path(__file__).parent / "curves" / f"{EXPERIMENT}.csv"
METRICS = ("val_acc", "val_loss", "train_loss")  # the epoch's metrics kept (the search optimises val_acc)
RECORDING, SESSION = "# recording: ", "# session: "


def draws(spec: spaces.Spec, n: int, seed: int) -> list[dict]:
    """Configs 0..n-1: the first n draws of a seeded random sampler over the space (the same prefix for any n)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [study.ask(spec.params).params for _ in range(n)]


def machine() -> str:
    """The CPU's model name (Linux), else what platform says."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def read_header(path: Path) -> tuple[dict, list[dict]]:
    """A recording's ``# recording`` dict and its ``# session`` dicts."""
    recording, sessions = {}, []
    with path.open() as f:
        for line in f:
            if line.startswith(RECORDING):
                recording = json.loads(line[len(RECORDING) :])
            elif line.startswith(SESSION):
                sessions.append(json.loads(line[len(SESSION) :]))
    return recording, sessions


def recorded_ids(path: Path) -> set[int]:
    with path.open() as f:
        return {int(row["config_id"]) for row in csv.DictReader(line for line in f if not line.startswith("#"))}


_data: datasets.Data | None = None  # the worker's data set, loaded once by ``_start``


def load_search_data(root: Path, subset: float, offset: float) -> datasets.Data:
    """The search's data as a trial reads it at ``subset`` (offset 0), or the same fraction of its training and
    validation examples from ``offset`` on: data a recording at offset 0 never sees."""
    name = spaces.load_spec(EXPERIMENT).dataset
    if not offset:
        return datasets.load_dataset(name, root, "search", subset, "cpu")
    if offset + subset > 1:
        raise SystemExit(f"--offset {offset} + --subset {subset} reach past the data's end (1)")
    data = datasets.load_dataset(name, root, "search", 1.0, "cpu")

    def part(values: tuple) -> tuple:
        n = len(values[1])
        return tuple(v[int(offset * n) : int(offset * n) + max(1, int(subset * n))] for v in values)

    return dataclasses.replace(data, splits={k: part(v) for k, v in data.splits.items()})


def _start(root: str, subset: float, offset: float) -> None:
    global _data
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")  # a schedule's or optimizer's notices, once per config
    _data = load_search_data(Path(root), subset, offset)


def train(config_id: int, sampled: dict, epochs: int) -> list[dict]:
    """One config's rows, one per epoch, trained as ``tunelab.engine.trial.run_trial`` trains a trial."""
    assert _data is not None  # the worker's _start loaded it
    spec = spaces.load_spec(EXPERIMENT)
    trainable = protocol.load_trainable(spec.trainable)
    config = spec.config(sampled) | {"epochs": epochs}
    parts = training.build(trainable, config, _data, spec.seed)
    rows = []
    for epoch in range(1, epochs + 1):
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            metrics = training.epoch(trainable, parts, _data, config, "val")
        except training.Diverged:
            metrics = {}
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rows.append({"config_id": config_id, **sampled, "epoch": epoch,
                     **{m: round(metrics[m], 6) if m in metrics else "" for m in METRICS},
                     "cpu_s": round(cpu, 3), "wall_s": round(wall, 3)})  # fmt: skip
        if not metrics:  # diverged: a search's trial fails here
            break
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 configs x 2 epochs on 1 %% into a temporary file")
    p.add_argument("--configs", type=int, help="configurations (default 100, --quick 3)")
    p.add_argument("--epochs", type=int, help="epochs per configuration (default 9, --quick 2)")
    p.add_argument("--subset", type=float, help="fraction of the search's data (default 0.03, --quick 0.01)")
    p.add_argument(
        "--offset",
        type=float,
        default=0.0,
        help="take the --subset fraction from this fraction of the "
        "search's data on (default 0: its start, as a search's --subset does)",
    )
    p.add_argument("--seed", type=int, default=0, help="the random sampler's seed that draws the configs (default 0)")
    p.add_argument("--jobs", type=int, default=2, help="configurations trained at once, 1 CPU each (default 2)")
    p.add_argument(
        "--out",
        type=Path,
        help=f"the CSV (default bench/curves/{EXPERIMENT}.csv; --quick: a temporary file); an existing one is resumed",
    )
    args = p.parse_args()
    quick = args.quick
    n, epochs = args.configs or (3 if quick else 100), args.epochs or (2 if quick else 9)
    subset = args.subset or (0.01 if quick else 0.03)
    with tempfile.TemporaryDirectory() as tmp:
        record(
            args.out or (Path(tmp) / f"{EXPERIMENT}.csv" if quick else DEFAULT_FILE),
            n,
            epochs,
            subset,
            args.seed,
            args.jobs,
            args.offset,
        )


def record(path: Path, n: int, epochs: int, subset: float, seed: int, jobs: int, offset: float = 0.0) -> None:
    spec = spaces.load_spec(EXPERIMENT)
    root = datasets.data_root()
    data = load_search_data(root, subset, offset)
    recording = {"experiment": EXPERIMENT, "space": str(spec.path.relative_to(spec.path.parents[1])),
                 "dataset": spec.dataset, "split": "search (train minus the fixed validation slice, "
                 f"tunelab.data.SPLIT_SEED={datasets.SPLIT_SEED})", "subset": subset,
                 "train_images": len(data.splits["train"][1]), "val_images": len(data.splits["val"][1]),
                 "epochs": epochs, "sampler": f"optuna RandomSampler(seed={seed})", "sampler_seed": seed,
                 "training_seed": spec.seed, "metric": spec.metric, "torch_threads": 1}  # fmt: skip
    recording |= {"offset": offset} if offset else {}
    del data
    if path.exists():
        have, _ = read_header(path)
        differs = {k: (have.get(k), v) for k, v in recording.items() if have.get(k) != v}
        if differs:
            raise SystemExit(f"{path} was recorded otherwise ({differs}): choose another --out")
        done = recorded_ids(path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(RECORDING + json.dumps(recording) + "\n")
        done = set()
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    session = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "machine": machine(),
               "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2), "jobs": jobs,
               "torch": torch.__version__, "command": command}  # fmt: skip
    configs = draws(spec, n, seed)
    todo = [i for i in range(n) if i not in done]
    print(
        f"{EXPERIMENT}: {n} configs x {epochs} epochs on {subset:.0%} of the search's data "
        f"({recording['train_images']} train, {recording['val_images']} validation images), {jobs} at a time, "
        f"1 torch thread each; {len(done)} already in {path}, {len(todo)} to train; {os.cpu_count()} CPUs "
        f"({session['machine']}), load average {session['load_average']:.1f}",
        flush=True,
    )
    columns = ["config_id", *spec.params, "epoch", *METRICS, "cpu_s", "wall_s"]
    with path.open("a", newline="") as f:
        f.write(SESSION + json.dumps(session) + "\n")
        f.flush()
        if not done and todo:
            f.write(",".join(columns) + "\n")
        writer = csv.DictWriter(f, columns)
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        with concurrent.futures.ProcessPoolExecutor(jobs, context, _start, (str(root), subset, offset)) as pool:
            futures = {pool.submit(train, i, configs[i], epochs): i for i in todo}
            for k, future in enumerate(concurrent.futures.as_completed(futures), 1):
                rows = future.result()
                writer.writerows(rows)
                f.flush()  # a config's rows together: a resumed recording skips whole configs
                best = max((r["val_acc"] for r in rows if r["val_acc"] != ""), default=math.nan)
                print(
                    f"  [{k}/{len(todo)}] config {futures[future]}: {len(rows)} epochs, best val_acc {best:.4f}, "
                    f"{sum(r['cpu_s'] for r in rows) / len(rows):.2f} CPU s/epoch "
                    f"({sum(r['wall_s'] for r in rows) / len(rows):.2f} wall)",
                    flush=True,
                )
    summary(path)


def summary(path: Path) -> None:
    """Per-epoch CPU seconds over the whole file: cheapest and costliest config, and the total."""
    with path.open() as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    per: dict[str, list[float]] = {}
    for row in rows:
        per.setdefault(row["config_id"], []).append(float(row["cpu_s"]))
    means = {c: sum(s) / len(s) for c, s in per.items()}
    cheap, costly = min(means, key=means.__getitem__), max(means, key=means.__getitem__)
    total = sum(map(sum, per.values()))
    print(
        f"{len(per)} configs, {len(rows)} epochs in {path}: {total / 60:.1f} CPU min in all; CPU s per epoch "
        f"{means[cheap]:.2f} (config {cheap}) to {means[costly]:.2f} (config {costly})"
    )
    print(f"costliest / cheapest config, CPU s per epoch: {means[costly] / means[cheap]:.2f}x")


if __name__ == "__main__":
    main()
