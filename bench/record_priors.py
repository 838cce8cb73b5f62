"""Records the built-in experiments' shipped priors (issue 29) by running real tunelab searches.

For each experiment, a short tunelab search whose best trials are written into search_spaces/<experiment>.yaml as
its ``priors:`` list (tunelab.engine.priors), each with a ``from:`` note saying where it came from.

How, per experiment, one at a time:

- **The search**: ``tunelab search search_spaces/EXP.yaml --time-budget T --seed 1 --no-priors --wandb disabled``
  (T: ``--budget``, default 90s; planned for this machine as a user's budgeted search is, calibration included)
  in a subprocess (``python -m tunelab``, so that each search has its own Ray; RAY_ADDRESS is dropped, so it runs
  on this machine), as run ``priors-EXP`` in a results folder outside the repository (a temporary one, removed at
  the end, or ``--results PATH``, kept; a finished run of the same command found there is reused, not searched
  again). Seed 1, not the seed 0 that users' searches take by default, and without the file's current priors, so
  the priors come from another search than the one they then start. Like every tunelab search it trains and scores
  trials on the search split only (train and validation, cut to the planned fraction): never the test split,
  which only a retrain's report reads.
- **The priors**: the top ``--top`` trials (default 3) of its leaderboard that reached a value (statuses completed,
  stopped early or cut by the time budget), completed ones first, then the rest, each group in the leaderboard's
  order (best value first; for several objectives its Pareto ranking, front first); the baseline's trial is left
  out (a search evaluates the baseline anyway), as is a config equal to one already taken. Each is the trial's
  sampled values (its ``config/`` columns) with floats rounded to 4 significant digits (more where 4 would leave
  the distribution: ``tunelab.spec.spaces.contains``), ints as ints, and a ``from:`` note naming the search, the date,
  the machine, the trial and its metrics.
- **The file**: the ``priors:`` block (a comment line naming this script's command, then one flow mapping per
  prior) replaces the file's ``priors:`` block where it has one (with this script's comment line above it), else
  goes right after ``baseline:``, else at the end. The rest of the file stays byte for byte (its text is edited,
  never re-dumped). Before writing, the new text is checked on a copy: ``tunelab.spec.spaces.load_spec`` accepts it and
  ``tunelab.engine.priors.points`` queues every prior (none outside the space); the file is then written atomically.

Experiments: those named, else every built-in one except fashion_cnn (its priors come from bench/curves: ``python
bench/replay.py --show-priors``); a grid search (which evaluates its own points and no priors) and an experiment
whose data set is missing (``tunelab data fetch NAME``; data root $TUNELAB_DATA or ./datasets) are skipped with a
line. Printed: the load average at the start and the end, each search's plan and wall time, and each experiment's
``priors:`` block. ``--dry-run`` prints the blocks and writes nothing. ``--quick`` (mnist_mlp_ae, T = 30 s,
``--dry-run``) is a smoke run: its priors come from too short a search to ship.
"""

import argparse
import contextlib
import datetime
import io
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna.distributions as od
import pandas as pd
import yaml

from tunelab import data as datasets
from tunelab.cli import _duration
from tunelab.engine import priors
from tunelab.errors import UserError
from tunelab.files import atomic_write
from tunelab.spec import spaces
from tunelab.store import runs

REPO = Path(__file__).resolve().parents[1]
SPACES = REPO / "search_spaces"
SEED = 1  # not users' default seed 0
BUDGET, QUICK_BUDGET, QUICK_EXPERIMENT = "90s", "30s", "mnist_mlp_ae"
TOP = 3
FROM_CURVES = {"fashion_cnn": "bench/replay.py --show-priors (from bench/curves/fashion_cnn_priors.csv)"}
FINISHED = ("completed", "stopped early", "cut by the time budget")  # tunelab.engine.search.FINISHED: trials that ended
DIGITS = 4  # significant digits of a float prior
MARK = "# priors: recorded by `python bench/record_priors.py"  # the comment line above a block this script wrote
TOP_KEY = r"[A-Za-z_][\w-]*"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "experiments",
        nargs="*",
        metavar="EXP",
        help=f"built-in experiments (default: every one but {', '.join(FROM_CURVES)}; --quick {QUICK_EXPERIMENT})",
    )
    p.add_argument(
        "--budget", metavar="T", help=f"each search's --time-budget (90s, 2m; default {BUDGET}, --quick {QUICK_BUDGET})"
    )
    p.add_argument(
        "--top", type=int, default=TOP, help=f"priors per experiment, the search's best trials (default {TOP})"
    )
    p.add_argument(
        "--results",
        type=Path,
        metavar="PATH",
        help="keep the searches' runs in PATH (outside the "
        "repository; a finished run of the same command there is reused; default: a temporary folder)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the priors: blocks, write no file")
    p.add_argument(
        "--quick", action="store_true", help=f"{QUICK_EXPERIMENT}, T = {QUICK_BUDGET}, --dry-run: a smoke run"
    )
    args = p.parse_args()  # fmt: skip
    budget = args.budget or (QUICK_BUDGET if args.quick else BUDGET)
    try:
        _duration(budget)
    except argparse.ArgumentTypeError as e:
        p.error(f"--budget: {e}")
    if args.top < 1:
        p.error("--top takes 1 or more")
    dry = args.dry_run or args.quick
    known = sorted(path.stem for path in SPACES.glob("*.yaml"))
    wanted = args.experiments or ([QUICK_EXPERIMENT] if args.quick else [e for e in known if e not in FROM_CURVES])
    for experiment in wanted:
        if experiment not in known:
            p.error(f"{experiment!r} is not a built-in experiment; known: {', '.join(known)}")
        if experiment in FROM_CURVES:
            p.error(f"{experiment}'s priors come from recorded curves, not from a search: {FROM_CURVES[experiment]}")
    if args.results and args.results.resolve().is_relative_to(REPO):
        p.error(f"--results {args.results}: choose a folder outside the repository")
    if args.results:
        args.results.mkdir(parents=True, exist_ok=True)

    root = datasets.data_root().resolve()
    smoke = " (--quick: a smoke run, its priors come from too short a search to ship)" if args.quick else ""
    print(f"# Priors of the built-in experiments, {datetime.datetime.now():%Y-%m-%d %H:%M}{smoke}\n")
    print(
        f"- {', '.join(wanted)}; tunelab search --time-budget {budget} --seed {SEED} --no-priors each, one at a "
        f"time, W&B disabled; the top {args.top} trials; data root {root}{'; dry run: no file written' * dry}"
    )
    print(f"- {os.cpu_count()} CPUs, load average at the start {load_average()} (1, 5, 15 min)", flush=True)
    failed = []
    with contextlib.ExitStack() as stack:
        results = args.results or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="record_priors-")))
        for experiment in wanted:
            print(f"\n## {experiment}\n", flush=True)
            try:
                record(experiment, budget, args.top, results.resolve(), root, dry)
            except UserError as e:
                print(f"{experiment}: FAILED: {e}", flush=True)
                failed.append(experiment)
    print(
        f"\nload average at the end {load_average()} (1, 5, 15 min; other processes on these CPUs slow every "
        f"search, and its plan adapts to that)"
    )
    if failed:
        raise SystemExit(f"no priors recorded for {', '.join(failed)} (see above)")


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def record(experiment: str, budget: str, top: int, results: Path, root: Path, dry: bool) -> None:
    """One experiment: its search (or a finished one in ``results``), its priors, its file (unless ``dry``)."""
    path = SPACES / f"{experiment}.yaml"
    spec = spaces.load_spec(str(path))
    if spec.method == "grid":
        print(f"skipped: a grid search evaluates its own points and no priors ({path.name}: method grid)")
        return
    if datasets.locate(spec.dataset, root) is None:
        print(f"skipped: data set {spec.dataset} is missing in {root} (`tunelab data fetch {spec.dataset}`)")
        return
    command = f"tunelab search {experiment} --time-budget {budget} --seed {SEED} --no-priors"
    run = search(path, f"priors-{experiment}", budget, results, root)
    board = run.leaderboard()
    chosen, considered = best_rows(board, spec, top)
    if chosen.empty:
        raise UserError(
            f"no trial of {run.dir} other than the baseline reached a value ({len(board)} trials: "
            f"{counts(board)}): try a larger --budget"
        )
    date = datetime.date.fromtimestamp(run.leaderboard_file.stat().st_mtime).isoformat()
    machine = f"{os.cpu_count()}-core CPU"
    if run.spec.gpus:
        import torch

        machine += f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", a GPU"
    entries = [prior_of(row, spec, f"{command} ({date}, {machine})") for _, row in chosen.iterrows()]
    n = len(entries)
    print(
        f"{n} prior{'s' * (n != 1)} from the {considered} of {len(board)} trials that reached a value "
        f"({counts(board)}); the first: {describe(chosen.iloc[0], spec)}{baseline_value(board, spec)}"
    )
    plan = f" (planned: {run.plan.trials} trials of up to {run.plan.max_epochs} epochs, on {run.plan.subset:.0%} " \
           f"of the search split)" if run.plan else ""  # fmt: skip
    extra = f" --budget {budget}" if budget != BUDGET else ""
    extra += f" --top {top}" if top != TOP else ""
    comment = f"{MARK} {experiment}{extra}`: the top {n} trial{'s' * (n != 1)} of `{command}`{plan}"
    block = priors_block(comment, entries)
    text = path.read_text(encoding="utf-8")
    new = with_priors(text, block)
    check(new, path.name, n)
    where = "replacing its priors:" if has_key(text, "priors") else (
        "after its baseline:" if has_key(text, "baseline") else "at its end")  # fmt: skip
    if dry:
        print(f"\nsearch_spaces/{path.name}, {where} (dry run: not written)\n{block}", end="", flush=True)
        return
    atomic_write(path, new)
    check(path.read_text(encoding="utf-8"), path.name, n)
    print(f"\nwritten to search_spaces/{path.name}, {where}\n{block}", end="", flush=True)


def search(path: Path, name: str, budget: str, results: Path, root: Path) -> runs.StoredRun:
    """The run ``name`` in ``results``: a finished one of the same command found there, else a new search in a
    subprocess."""
    folder = results / name
    if (folder / runs.INFO_FILE).is_file():
        run = runs.open_run(name, results)
        same = (run.options.seed == SEED and run.options.time_budget == _duration(budget) and run.options.no_priors
                and run.spec.name == path.stem)  # fmt: skip
        if not same or not run.leaderboard_file.is_file():
            raise UserError(f"{folder} holds another or an unfinished run: delete it to search again")
        print(f"reusing the finished run {folder} (delete it to search again)")
        return run
    argv = [sys.executable, "-m", "tunelab", "search", str(path), "--time-budget", budget, "--seed", str(SEED),
            "--no-priors", "--name", name, "--results-dir", str(results), "--data-dir", str(root), "--wandb",
            "disabled"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log = results / f"{name}.log"
    print(f"$ {shlex.join(['python', *argv[1:]])}  (output: {log})", flush=True)
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - start
    tail = log.read_text(errors="replace").splitlines()
    if done.returncode != 0:
        raise UserError(f"the search exited {done.returncode} after {wall:.0f} s; its output's end:\n"
                        + "\n".join(tail[-30:]))  # fmt: skip
    run = runs.open_run(name, results)
    for line in run.plan.lines() if run.plan else []:
        print(f"  {line}")
    print(f"search: {wall:.0f} s wall (budget {budget}), load average now {load_average()}", flush=True)
    return run


def best_rows(board: pd.DataFrame, spec: spaces.Spec, top: int) -> tuple[pd.DataFrame, int]:
    """The ``top`` rows to take, and how many reached a value: completed first, then the rest, each in the
    leaderboard's order; the baseline's and one equal to a row already taken left out."""
    reached = board[board["status"].isin(FINISHED) & board[spec.metrics].notna().all(axis=1)]
    ordered = reached.assign(_later=~reached["status"].eq("completed")).sort_values("_later", kind="stable")
    chosen, seen = [], []
    for index, row in ordered.iterrows():
        values = rounded(row, spec)
        if spec.baseline and all(runs.sampled(row).get(k) == v for k, v in spec.baseline.items()):
            continue
        if values in seen:
            continue
        seen.append(values)
        chosen.append(index)
        if len(chosen) == top:
            break
    return reached.loc[chosen], len(reached)


def rounded(row: pd.Series, spec: spaces.Spec) -> dict:
    """A row's sampled values of the space's searched hyperparameters, in the file's order, floats rounded."""
    values = runs.sampled(row)
    return {key: round_in(distribution, key, values[key]) for key, distribution in spec.params.items()
            if key in values}  # fmt: skip


def round_in(distribution: od.BaseDistribution, key: str, value):
    """``value`` with 4 significant digits where a float (more where 4 would leave ``distribution``), an int where
    the distribution is of ints."""
    if isinstance(distribution, od.CategoricalDistribution):  # the choice itself: 64, not 64.0 read from a CSV
        same = (c for c in distribution.choices if c == value and isinstance(c, bool) == isinstance(value, bool))
        return next(same, value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(distribution, od.IntDistribution) and float(value).is_integer():
        return int(value)
    if isinstance(value, int) or not math.isfinite(value):
        return value
    for digits in range(DIGITS, 18):
        candidate = float(f"{value:.{digits}g}")
        if spaces.contains(distribution, key, candidate):
            return candidate
    return value


def prior_of(row: pd.Series, spec: spaces.Spec, search_note: str) -> dict:
    """A prior: the row's rounded values and where it came from."""
    return {**rounded(row, spec), spaces.PRIOR_FROM: f"{search_note}: {describe(row, spec)}"}


def describe(row: pd.Series, spec: spaces.Spec) -> str:
    """ "trial 5a79d61c, val_acc 0.8975 at epoch 10 of 12 (completed)"."""
    values = ", ".join(f"{m} {plain_number(row[m])}" for m in spec.metrics)
    return f"trial {row['trial_id']}, {values} at epoch {row['best_epoch']} of {row['epochs']} ({row['status']})"


def plain_number(value) -> str:
    value = runs.plain(value)
    return str(value) if isinstance(value, int) else f"{value:.4g}"


def baseline_value(board: pd.DataFrame, spec: spaces.Spec) -> str:
    """ "; the baseline's: val_acc 0.85 (completed)", where the baseline's trial reached a value."""
    if not spec.baseline:
        return ""
    for _, row in board.iterrows():
        if all(runs.sampled(row).get(k) == v for k, v in spec.baseline.items()):
            if row[spec.metrics].notna().all():
                values = ", ".join(f"{m} {plain_number(row[m])}" for m in spec.metrics)
                return f"; the baseline's trial: {values} ({row['status']})"
            return f"; the baseline reached no value ({row['status']})"
    return ""


def counts(board: pd.DataFrame) -> str:
    return ", ".join(f"{n} {status}" for status, n in board["status"].value_counts().items()) or "none"


# --- the file's text ------------------------------------------------------------------------------------------


def priors_block(comment: str, entries: list[dict]) -> str:
    """The lines of a ``priors:`` list, each prior a flow mapping on one line, with ``comment`` above."""
    lines = [comment, "priors:"]
    for entry in entries:
        flow = yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=10**9, allow_unicode=True)
        lines.append(f"  - {flow.strip()}")
    return "\n".join(lines) + "\n"


def has_key(text: str, key: str) -> bool:
    return _key_line(text.splitlines(keepends=True), key) is not None


def _key_line(lines: list[str], key: str) -> int | None:
    """The index of the top-level ``key:`` line."""
    pattern = re.compile(rf"{re.escape(key)}\s*:(\s|$)")
    return next((i for i, line in enumerate(lines) if pattern.match(line)), None)


def _end_of(lines: list[str], start: int) -> int:
    """The index after the last line of the top-level key at ``start``: the lines after it that are indented, or a
    block sequence's ``- `` at column 0; blank lines only where more of them follow (trailing blank lines and
    column-0 comments belong to what comes next)."""
    end = start + 1
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        if line[0] in " \t" or line.startswith("-"):
            end = i + 1
        else:
            break
    return end


def with_priors(text: str, block: str) -> str:
    """``text`` with ``block`` as its priors: in place of its ``priors:`` key (and this script's comment line above
    it), else right after its ``baseline:`` key, else at the end; every other byte as it was."""
    lines = text.splitlines(keepends=True)
    start = _key_line(lines, "priors")
    if start is not None:
        end = _end_of(lines, start)
        while start > 0 and lines[start - 1].startswith(MARK):
            start -= 1
    else:
        baseline = _key_line(lines, "baseline")
        start = end = _end_of(lines, baseline) if baseline is not None else len(lines)
    before = lines[:start]
    if before and not before[-1].endswith(("\n", "\r")):
        before[-1] += "\n"
    newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    return "".join(before) + block.replace("\n", newline) + "".join(lines[end:])


def check(text: str, name: str, n: int) -> None:
    """``text``, a space file named ``name`` with ``n`` priors, loads, and a search would queue every prior."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        spec = spaces.load_spec(str(path))  # a UserError says what is wrong
        if len(spec.priors) != n:
            raise UserError(f"the new {name} holds {len(spec.priors)} priors, not {n}")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            queued = priors.points(runs.StoredRun(Path(tmp) / "run", spec, runs.Options(), Path(tmp)))
        room = max(0, spec.run_cap - (1 if spec.baseline else 0))
        if "skipped" in out.getvalue() or len(queued) != min(n, room):
            raise UserError(f"the new {name}: a search would not queue every prior: {out.getvalue().strip()}")


if __name__ == "__main__":
    main()
