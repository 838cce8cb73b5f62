"""Trials per minute of a real `tunelab search` on one GPU: a whole GPU per trial against four trials packed on it.

Three searches of search_spaces/fashion_cnn.yaml (its baseline config first, then TPE), each through the real
``tunelab search`` (``cli.main`` in this process, under Ray, ``--wandb disabled``):

1. ``--trials 16 --gpus-per-trial 1 --concurrency 1``: one trial at a time has the GPU.
2. ``--trials 16 --gpus-per-trial 0.25 --concurrency 4``: four trials share it.
3. ``--trials 64`` at whichever of the two did more trials per minute.

Every trial is short (default 2 epochs on 20 % of Fashion-MNIST) and both settings give each trial the same
``--cpus-per-trial`` (the machine's CPUs / 4, so that four trials fit), so only the packing differs. Trials per
minute = trials / the search's wall time (the whole command: Ray's start and stop included, as a user waits for
it); the same over ``Tuner.fit`` alone is printed beside it. Goals (issue 12): packed >= 3x the trials per minute
of one at a time, and 64 trials in <= 3 minutes.

GPU memory: each trial reports ``gpu_mem_peak_mb`` per epoch (torch.cuda.max_memory_allocated of its worker, reset
when the trial starts; it includes the data set the worker keeps on the GPU but not the CUDA context) and this
prints its maximum per trial, the median and the largest over the trials; ``nvidia-smi`` (if present) is
polled twice a second for the GPU's used memory and utilisation during each search, which do include the
contexts of all the workers.

A GPU machine with Python and torch but no package index, Ray or Optuna: ``bench/device_wheels.sh 3.12`` builds
here the wheels of what a search needs and such a machine lacks (58 MB: Ray's without its Java jars and dashboard
web client, Optuna, kornia and their needs; not W&B, which a ``--wandb disabled`` search does without), and
``bench/on_device.sh`` runs there in a copy of the checkout. The wheels and Fashion-MNIST (30 MB) do not fit one
64 MiB transfer together, so it takes two calls, back to back while the machine stays up (what the first installs
stays for the second): ``bench/on_device.sh install`` carrying ``build/device-wheels``, then ``bench/on_device.sh
bench`` carrying ``datasets/fashion-mnist`` (``tunelab data fetch fashion_mnist`` puts it there). Tried on a CPU
machine set up alike (Python 3.11 with torch and the scientific stack, no Ray, Optuna or W&B; wheels for 3.11),
where ``install`` and ``bench --quick`` ran through.

``--quick`` is a smoke run: 4, 4 and 2 trials of 1 epoch on 1 %. On a machine without CUDA (this project's
2-core CPU) it runs the same code path with CPU fractions in place of GPU fractions (``--cpus-per-trial`` all the
CPUs at concurrency 1, then a quarter of them at concurrency 4) and says so: its figures are no GPU figures.
Without ``--quick`` and without CUDA it refuses to run.
"""

import argparse
import contextlib
import io
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import ray
import torch
from ray import tune

from tunelab import cli, data as datasets
from tunelab.store import leaderboard, runs

EXPERIMENT = "fashion_cnn"
PACK = 4  # trials per GPU in the packed setting (--gpus-per-trial 1/PACK)
GOALS = {"ratio": 3.0, "big_s": 180.0}  # packed / whole trials per minute; seconds for the 64-trial search


class GpuMonitor:
    """The GPU's used memory (MiB) and utilisation (%) from nvidia-smi, polled in a thread while the block runs."""

    def __init__(self, period_s: float = 0.5):
        self.period_s = period_s
        self.samples: list[tuple[float, float]] = []  # (MiB used, % utilisation)
        self.cmd = ["nvidia-smi", "--query-gpu=memory.used,utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
        self._stop = threading.Event()

    def _poll(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                out = subprocess.run(self.cmd, capture_output=True, text=True, timeout=5).stdout.split(",")
                self.samples.append((float(out[0]), float(out[1])))
            except (OSError, subprocess.SubprocessError, ValueError, IndexError):
                pass

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()

    def summary(self) -> str:
        if not self.samples:
            return "nvidia-smi: no samples"
        used, util = zip(*self.samples)
        return f"nvidia-smi: peak used {max(used):.0f} MiB, mean utilisation {statistics.mean(util):.0f} %"


def gpu_name() -> str:
    """The GPU as nvidia-smi names it (asking torch would give this process a CUDA context, memory on the GPU)."""
    try:
        query = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader", "-i", "0"]
        return subprocess.run(query, capture_output=True, text=True, timeout=10).stdout.strip() or "a CUDA GPU"
    except (OSError, subprocess.SubprocessError):
        return "a CUDA GPU (no nvidia-smi)"


@contextlib.contextmanager
def timed_fit(into: dict):
    """Seconds spent in Tuner.fit (the trials) while the block runs."""
    original = tune.Tuner.fit

    def fit(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            into["fit"] = into.get("fit", 0.0) + time.perf_counter() - start

    tune.Tuner.fit = fit  # type: ignore[method-assign]  # patched on purpose, for the block
    try:
        yield
    finally:
        tune.Tuner.fit = original  # type: ignore[method-assign]


def search(name: str, trials: int, concurrency: int, cpus: float, gpus: float, args, root: Path, results: Path) -> dict:
    """One `tunelab search` of EXPERIMENT: wall time, Tuner.fit time, each trial's peak GPU memory."""
    argv = ["--data-dir", str(root), "--results-dir", str(results), "search", EXPERIMENT, "--name", name,
            "--trials", str(trials), "--max-epochs", str(args.epochs), "--subset", str(args.subset),
            "--concurrency", str(concurrency), "--cpus-per-trial", f"{cpus:g}", "--gpus-per-trial", f"{gpus:g}",
            "--wandb", "disabled"]  # fmt: skip
    parts: dict[str, float] = {}
    out = io.StringIO()
    with GpuMonitor() as monitor, timed_fit(parts), contextlib.redirect_stdout(out):
        start = time.perf_counter()
        rc = cli.main(argv)
        wall = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"tunelab search {' '.join(argv)} failed ({rc}):\n{out.getvalue()}")
    run = runs.open_run(name, results)
    histories = leaderboard.histories(run)
    board = leaderboard.table(run)
    done = int(board["status"].isin(["completed", "stopped early"]).sum()) if len(board) else 0
    peaks = [df["gpu_mem_peak_mb"].max() for df in histories.values() if "gpu_mem_peak_mb" in df]
    return {"wall": wall, "fit": parts.get("fit", math.nan), "trials": trials, "done": done, "peaks": peaks,
            "epoch_s": statistics.median([s for df in histories.values() for s in df.get("epoch_s", [])] or [math.nan]),
            "monitor": monitor.summary(), "cpus": cpus, "gpus": gpus, "concurrency": concurrency}  # fmt: skip


def per_minute(r: dict, key: str = "wall") -> float:
    return r["done"] / r[key] * 60


def line(label: str, r: dict, gpu: bool) -> str:
    resources = f"--gpus-per-trial {r['gpus']:g}" if gpu else f"--cpus-per-trial {r['cpus']:g} (no GPU)"
    if r["peaks"]:
        memory = (
            f"peak GPU memory per trial median {statistics.median(r['peaks']):.0f} MiB, max {max(r['peaks']):.0f} MiB"
        )
    elif gpu:
        memory = "peak GPU memory per trial: not reported (no gpu_mem_peak_mb in the trials' results)"
    else:
        memory = "no GPU memory on a CPU"
    return (f"{label}: {resources} --concurrency {r['concurrency']}: {r['done']} of {r['trials']} trials in "
            f"{r['wall']:.1f} s = {per_minute(r):.1f} trials/min ({per_minute(r, 'fit'):.1f} over Tuner.fit's "
            f"{r['fit']:.1f} s), median epoch {r['epoch_s']:.2f} s\n    {memory}; {r['monitor']}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="4, 4 and 2 trials, 1 epoch on 1 %%: a smoke run (on a "
                   "machine without CUDA, with CPU fractions in place of GPU fractions)")  # fmt: skip
    p.add_argument("--trials", type=int, help="trials per setting (default 16, --quick 4)")
    p.add_argument("--big-trials", type=int, help="trials of the last search (default 64, --quick 2)")
    p.add_argument("--epochs", type=int, help="epochs per trial (default 2, --quick 1)")
    p.add_argument("--subset", type=float, help="fraction of the data (default 0.2, --quick 0.01)")
    p.add_argument("--cpus-per-trial", type=float, help=f"CPUs per trial on a GPU (default: the CPUs / {PACK})")
    args = p.parse_args()
    quick, gpu = args.quick, torch.cuda.is_available()
    if not gpu and not quick:
        print("bench/gpu.py: no CUDA GPU on this machine; `--quick` runs the CPU smoke run of the same code path",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)
    trials, big = args.trials or (4 if quick else 16), args.big_trials or (2 if quick else 64)
    args.epochs, args.subset = args.epochs or (1 if quick else 2), args.subset or (0.01 if quick else 0.2)
    cpus = os.cpu_count() or 1
    if gpu:
        per_trial = args.cpus_per_trial or max(1, cpus // PACK)
        whole, packed = (per_trial, 1.0), (per_trial, 1 / PACK)  # (cpus, gpus) per trial
        print(f"GPU: {gpu_name()}; {cpus} CPUs; torch {torch.__version__}, Ray {ray.__version__}")
    else:
        whole, packed = (float(cpus), 0.0), (cpus / PACK, 0.0)
        print(f"CPU SMOKE RUN, NOT A GPU FIGURE: no CUDA here, so the CPUs stand in for the GPU (a trial gets all "
              f"{cpus} CPUs, then 1/{PACK} of them); torch {torch.__version__}, Ray {ray.__version__}")  # fmt: skip
    print(f"{EXPERIMENT}: {trials} trials x {args.epochs} epoch(s) on {args.subset:.0%} of the data per setting, then "
          f"{big}; load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip

    root = datasets.data_root()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        one = search("whole", trials, 1, *whole, args, root, results)
        print(line(f"whole {'GPU' if gpu else 'CPU set'} per trial", one, gpu), flush=True)
        four = search("packed", trials, PACK, *packed, args, root, results)
        print(line(f"{PACK} trials per {'GPU' if gpu else 'CPU set'}", four, gpu), flush=True)
        ratio = per_minute(four) / per_minute(one)
        print(f"\npacked / whole trials per minute: {ratio:.2f}x (goal >= {GOALS['ratio']:g}x)"
              f"{'' if gpu else ' (CPU smoke run, not a GPU figure)'}\n")  # fmt: skip
        best, k = (four, PACK) if per_minute(four) >= per_minute(one) else (one, 1)
        many = search("big", big, k, best["cpus"], best["gpus"], args, root, results)
        print(line(f"{big} trials at the better setting", many, gpu))
        print(f"\n{big} trials in {many['wall']:.0f} s (goal: 64 trials in <= {GOALS['big_s']:.0f} s)"
              f"{'' if gpu else ' (CPU smoke run, not a GPU figure)'}")  # fmt: skip


if __name__ == "__main__":
    main()
