"""A search's fixed cost in a process that has searched before (issue 30): the Python API keeps the local Ray that
its first search started (tunelab.engine.cluster.keep_local), so that a notebook's later searches skip Ray's start.

Searches of fashion_cnn run one after another in this process through ``tunelab.search``, as in a notebook's kernel:
each N trials of 1 epoch on a small fraction of the data, one at a time, without a time budget (a planned search
adds its calibration, seconds of training that are no fixed cost), W&B offline (what a student without an API key
gets), on a local Ray. For each search, from the call of tunelab.search:

- to **first trial started**: Ray Tune started the first trial's actor (its worker process is up; Tune's
  ``on_trial_start``, as a callback after tunelab's own sees it);
- to **first epoch began**: the first trial's first epoch started to train (when the driver got the trial's first
  result, less that epoch's own ``epoch_s``: about, as the result's trip to the driver counts in it).

The imports that the first search needs (torch, Ray Tune, Optuna, ...) are timed apart: a fresh kernel's first search
pays them too. The goal: a later search starts its first trial within 3 s. ``--quick`` is a smoke run (2 searches of
1 trial on 1 % of the data); without it, 4 searches of 2 trials on 2 % (the first and 3 later ones).
"""

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time

EXPERIMENT = "fashion_cnn"
GOAL_S = 3.0  # a later search's call -> first trial started (issue 30)


class Clock:
    """When the search's first trial started and its first epoch began (time.perf_counter), as Tune's callbacks see
    them in the driver; made a tune.Callback by ``timer``."""

    def __init__(self):
        self.started = self.began = None

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.started is None:
            self.started = time.perf_counter()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.began is None:
            self.began = time.perf_counter() - result.get("epoch_s", 0.0)


def timer(engine, tune) -> list[Clock]:
    """Install a Clock in every search's callbacks (the last, as tunelab's own come first); return the list of
    clocks, one per search, in order."""
    clocks: list[Clock] = []
    callback = type("ClockCallback", (Clock, tune.Callback), {})
    original = engine._callbacks

    def with_clock(*args, **kwargs):
        callbacks = original(*args, **kwargs)
        clocks.append(callback())
        return [*callbacks, clocks[-1]]

    engine._callbacks = with_clock
    return clocks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 searches of 1 trial on 1 %% of the data: a smoke run")
    p.add_argument("--searches", type=int, help="searches in this process (default 4, --quick 2)")
    p.add_argument("--trials", type=int, help="trials per search (default 2, --quick 1)")
    p.add_argument("--subset", type=float, help="fraction of the data (default 0.02, --quick 0.01)")
    args = p.parse_args()
    searches = max(2, args.searches or (2 if args.quick else 4))
    trials = args.trials or (1 if args.quick else 2)
    subset = args.subset or (0.01 if args.quick else 0.02)
    print(f"{searches} searches of {EXPERIMENT} in one process, each {trials} trial(s) x 1 epoch on {subset:.0%} of "
          f"the data, one at a time, W&B offline; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
          flush=True)  # fmt: skip

    start = time.perf_counter()
    import ray
    import torch
    from ray import tune

    import tunelab
    from tunelab.engine import cluster, search as engine

    imports = time.perf_counter() - start
    print(f"imports (tunelab.engine.search: torch {torch.__version__}, Ray {ray.__version__}, Optuna): {imports:.1f} "
          "s, which a fresh kernel's first search pays too\n")  # fmt: skip

    clocks = timer(engine, tune)
    ray_start: list[float] = []
    init = cluster.init

    def timed_init(*a, **k):
        t = time.perf_counter()
        init(*a, **k)
        ray_start.append(time.perf_counter() - t)

    cluster.init = timed_init
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for i in range(searches):
                out, inits = io.StringIO(), len(ray_start)
                called = time.perf_counter()
                try:
                    with contextlib.redirect_stdout(out):
                        tunelab.search(EXPERIMENT, name=f"search{i + 1}", seed=i, trials=trials, max_epochs=1,
                                       subset=subset, concurrency=1, wandb="offline", address="local",
                                       results_dir=tmp)  # fmt: skip
                except Exception:
                    print(out.getvalue())
                    raise
                ended = time.perf_counter()
                clock = clocks[-1]
                rows.append({"search": f"{i + 1}{' (starts Ray)' if i == 0 else ''}",
                             "ray": f"{ray_start[-1]:.1f} s" if len(ray_start) > inits else "reused",
                             "started": clock.started - called, "began": clock.began - called,
                             "wall": ended - called})  # fmt: skip
        finally:
            cluster.keep_local(False)

    print("| search | Ray start | call -> first trial started | call -> first epoch began (about) | wall s |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['search']} | {r['ray']} | {r['started']:.1f} s | {r['began']:.1f} s | {r['wall']:.1f} |")
    later = statistics.median(r["started"] for r in rows[1:])
    began = statistics.median(r["began"] for r in rows[1:])
    print(f"\nsecond / first search, call to first trial start: {later / rows[0]['started']:.2f}x "
          f"(later searches' median {later:.1f} s, first trial training from {began:.1f} s; the first's "
          f"{rows[0]['started']:.1f} s)")  # fmt: skip
    print(f"goal: a later search's first trial starts within {GOAL_S:g} s: {'met' if later <= GOAL_S else 'NOT met'}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
