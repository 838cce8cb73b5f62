"""The Python API: tunelab's steps as functions, for a notebook or a script. The command line (tunelab.cli) is a thin
layer over it: it parses flags, calls these, prints what they return and turns their errors into exit codes.

    import tunelab

    run = tunelab.search("fashion_cnn", time_budget="20m")  # a tunelab.Run; Jupyter shows its best trials
    run.leaderboard                                          # a pandas DataFrame, best first
    run.best_config                                          # a dict
    run.retrain(seeds=3)                                     # the test metrics, mean ± std over the seeds
    run.report()                                             # the report's path; Jupyter shows the report
    tunelab.open("fashion_cnn")                              # a run searched earlier, from its folder

Bad input raises tunelab.UserError with the one line that the command line prints; a step that ran and did not
succeed (every trial or model failed, Ctrl-C) raises tunelab.Failed. Nothing here exits the process.

In one process (a notebook's kernel) the local Ray that the first search starts serves the later ones: Ray's start
is most of a small search's fixed cost (tunelab.engine.cluster.keep_local). It stops when the process exits.

This module imports only the standard library at first: ``import tunelab`` stays light, and each function imports
the steps it runs.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import math
import mimetypes
import numbers
import os
import re
import sys
import threading
import types
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from tunelab.errors import Failed, UserError

if TYPE_CHECKING:
    import pandas as pd

    from tunelab.report import comparison as _comparison
    from tunelab.spec import planner as _planner
    from tunelab.store import runs

# The values of options, checked alike for the command line's flags (text) and the API's arguments (Python values):
# each returns the value, or raises a UserError saying what it must be (the command line adds "argument --flag: ",
# the API the argument's name).

DURATION = "seconds (90) or a number with s, m or h (90s, 20m, 1.5h)"
WANDB_MODES = ("online", "offline", "disabled")  # tunelab.tracking.MODES, without importing W&B's module


def number(value, kind: type = int, low: float = 1, strict: bool = False):
    """An integer (or a number) >= ``low``, or > ``low`` where ``strict``."""
    what = "an integer" if kind is int else "a number"
    parsed = value
    if isinstance(value, str):
        try:
            parsed = kind(value)
        except ValueError:
            parsed = None
    if (
        isinstance(parsed, bool)
        or not isinstance(parsed, numbers.Real)
        or (kind is int and not float(parsed).is_integer())
    ):
        raise UserError(f"must be {what}, not {value!r}")
    if not math.isfinite(parsed) or parsed < low or (strict and parsed == low):
        raise UserError(f"must be {what} {'>' if strict else '>='} {low:g}, not {value}")
    return kind(parsed)


def positive(value) -> float:
    return number(value, float, 0, strict=True)


def duration(value) -> float:
    """A time budget in seconds: a number of seconds, a timedelta, or text with the unit s, m or h (90s, 20m, 1.5h)."""
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, str):
        found = re.fullmatch(r"\s*(\d+\.?\d*|\.\d+)\s*([smh]?)\s*", value)
        if not found:
            raise UserError(f"must be a duration: {DURATION}, not {value!r}")
        seconds = float(found[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[found[2]]
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise UserError(f"must be a duration: {DURATION}, not {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"must be a duration > 0: {DURATION}, not {value!r}")
    return seconds


def fraction(value) -> float:
    parsed = positive(value)
    if parsed > 1:
        raise UserError(f"must be a fraction in (0, 1], not {value}")
    return parsed


def seed(value) -> int:
    """A seed of the sampler and the trials, as a search-space file's seed."""
    from tunelab.spec import spaces

    parsed = number(value, int, 0)
    if parsed >= spaces.SEEDS:
        raise UserError(f"must be below 2**32 ({spaces.SEEDS}), not {value}")
    return parsed


def gpus(value) -> float:
    """GPUs per trial: 0, a fraction of one GPU (trials share it) or a whole number of GPUs."""
    from tunelab.spec import spaces

    parsed = number(value, float, 0)
    if not spaces.gpus_ok(parsed):
        raise UserError(f"must be {spaces.GPUS}, not {value}")
    return parsed


def run_name(value) -> str:
    """A run's name: its results folder, W&B group and study, so one plain folder name."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value):
        raise UserError(f"must be a folder name of letters, digits, '.', '_' and '-' that starts with a letter or a "
                        f"digit, not {value!r}")  # fmt: skip
    return value


def wandb_mode(value) -> str:
    if value not in WANDB_MODES:
        raise UserError(f"must be one of {', '.join(WANDB_MODES)}, not {value!r}")
    return value


CHECKS = {
    "time_budget": duration, "retrain_budget": duration, "trials": number, "max_epochs": number,
    "concurrency": number, "cpus_per_trial": positive, "gpus_per_trial": gpus, "subset": fraction, "seed": seed,
    "name": run_name, "warm_start": run_name, "wandb": wandb_mode, "top_k": number, "seeds": number,
    "epochs": number, "port": number,
}  # fmt: skip


def _checked(**values) -> dict:
    """The API's arguments, checked as the command line checks its flags (None: not given); a bad one is a UserError
    that names it."""
    checked = {}
    for name, value in values.items():
        try:
            checked[name] = None if value is None else CHECKS[name](value)
        except UserError as e:
            raise UserError(f"{name}: {e}") from None
    return checked


def _fixed(given: dict) -> dict:
    """The options a plan keeps (tunelab.spec.planner.FLAGS), as the user gave them."""
    from tunelab.spec import planner

    return {k: given[k] for k in planner.FLAGS if given.get(k) is not None}


# The steps


def plan(
    experiment: str | Path, *, time_budget=None, retrain_budget=None, trials=None, max_epochs=None, subset=None,
    concurrency=None, cpus_per_trial=None, gpus_per_trial=None, no_priors: bool = False, data_dir=None,
) -> _planner.Plan:  # fmt: skip
    """The plan of a search of ``experiment`` within ``time_budget``, without running it (what ``tunelab plan``
    prints): trials, epochs, ASHA's rungs, the fraction of the data, concurrency and the retrain. It times a short
    calibration of the space's cheapest and costliest configs on this machine. ``print(plan)`` shows it in two lines.

    The arguments are those of ``search``; ``trials``, ``max_epochs``, ``subset`` and ``concurrency``, where given,
    are kept as they are and the rest is planned around them."""
    from tunelab import data
    from tunelab.engine import calibrate
    from tunelab.spec import spaces
    from tunelab.store import runs

    given = _checked(time_budget=time_budget, retrain_budget=retrain_budget, trials=trials, max_epochs=max_epochs,
                     subset=subset, concurrency=concurrency, cpus_per_trial=cpus_per_trial,
                     gpus_per_trial=gpus_per_trial)  # fmt: skip
    options = runs.Options(
        trials=given["trials"], max_epochs=given["max_epochs"], time_budget=given["time_budget"],
        cpus_per_trial=given["cpus_per_trial"], gpus_per_trial=given["gpus_per_trial"],
    )  # fmt: skip
    if not given["time_budget"]:
        raise UserError("tunelab plan needs --time-budget (90s, 20m, 1.5h): the time to plan the search for")
    spec = options.apply(spaces.load_spec(str(experiment)))
    return calibrate.plan_for(spec, data.data_root(data_dir), _fixed(given), given["retrain_budget"], bool(no_priors))


def search(
    experiment: str | Path, *, time_budget=None, retrain_budget=None, trials=None, max_epochs=None, subset=None,
    concurrency=None, cpus_per_trial=None, gpus_per_trial=None, seed=None, name=None, wandb=None,
    warm_start: Iterable[str] = (), no_priors: bool = False, address=None, storage=None, data_dir=None,
    results_dir=None, verbose: bool = False,
) -> Run:  # fmt: skip
    """Run a hyperparameter search and return its ``Run`` (what ``tunelab search`` does).

    ``experiment``: a built-in experiment's name (``tunelab list``) or the path of a search-space YAML file. Each
    option overrides the file's value (None: keep it):

    - ``time_budget``: plan the search to end within it (``"20m"``, ``"1.5h"``, ``"90s"`` or seconds), calibration
      included; it stops when the time is up, with the results so far kept. ``retrain_budget`` (with it): try only
      configs whose retrain (one seed, the planned epochs, all the data) is expected within it.
    - ``trials``, ``max_epochs``: trials, and epochs per trial (default: planned, else the file's).
    - ``subset``: train on this fraction of the data; ``concurrency``: at most this many trials at once.
    - ``cpus_per_trial`` (also torch's threads), ``gpus_per_trial`` (fractions pack trials on one GPU).
    - ``seed``: of the sampler and the trials. ``name``: the run's name (default: the experiment's).
    - ``wandb``: "online", "offline" or "disabled" (default: online with an API key, else offline).
    - ``warm_start``: names of earlier runs whose finished trials the sampler starts from; ``no_priors``: do not
      evaluate the file's priors first.
    - ``address``: a Ray cluster (default: $RAY_ADDRESS, else a local Ray); ``storage``: where Ray keeps the trials
      (a shared file system or a bucket; default: the run's folder).
    - ``data_dir``, ``results_dir``: the data and results roots (default: $TUNELAB_DATA or ./datasets,
      $TUNELAB_RESULTS or ./results).
    - ``verbose``: also print a line per trial start and per epoch. Without it a notebook or a terminal shows a
      progress bar (trials done of those planned, running, the best value so far, elapsed and expected time), and
      other output (a log, CI) one line per trial that ends.

    A search whose trials all failed raises tunelab.Failed (its leaderboard is written); where only some failed,
    the returned run's ``warning`` says so. Ctrl-C stops it (tunelab.Failed; ``tunelab.resume(name)`` continues it).
    The local Ray it starts stays up for the next search in this process.
    """
    from tunelab import data, tracking
    from tunelab.engine import calibrate, cluster, search as engine, warmstart
    from tunelab.spec import spaces
    from tunelab.store import runs

    warm_start = [warm_start] if isinstance(warm_start, str) else list(warm_start or ())
    given = _checked(time_budget=time_budget, retrain_budget=retrain_budget, trials=trials, max_epochs=max_epochs,
                     subset=subset, concurrency=concurrency, cpus_per_trial=cpus_per_trial,
                     gpus_per_trial=gpus_per_trial, seed=seed, name=name, wandb=wandb)  # fmt: skip
    for earlier in warm_start:
        _checked(warm_start=earlier)
    if given["retrain_budget"] and not given["time_budget"]:
        raise UserError("--retrain-budget goes with --time-budget: it limits the configs a planned search tries")

    options = runs.Options(
        trials=given["trials"], max_epochs=given["max_epochs"], time_budget=given["time_budget"],
        cpus_per_trial=given["cpus_per_trial"], gpus_per_trial=given["gpus_per_trial"], seed=given["seed"],
        concurrency=given["concurrency"], subset=given["subset"] or 1.0, address=cluster.address(address),
        storage=cluster.storage(storage), wandb=wandb, warm_start=warm_start, no_priors=bool(no_priors),
    )  # fmt: skip
    spec = options.apply(spaces.load_spec(str(experiment)))
    folder = runs.results_root(results_dir) / (name or spec.name)
    run = runs.StoredRun(folder, spec, options, data.data_root(data_dir))
    with run.locked("search"):  # checked under the lock: a search that held it may have written the folder
        engine.check_unused(run)
        if engine.started(run):
            raise UserError(
                f"{run.experiment_path} already holds a search; continue it with "
                f"`tunelab resume {folder.name}`, or start another with --name"
            )
        # a time budget plans the search (calibration counts in it); a file's time_budget_s only stops it
        if given["time_budget"]:
            tracking.mode(options.wandb)  # a mode or an earlier run that cannot work is refused before calibration
            warmstart.check(run)
            planned = calibrate.plan_for(spec, run.data_dir, _fixed(given), given["retrain_budget"], options.no_priors)
            run = calibrate.apply(run, planned)
            print("\n".join(planned.lines()), flush=True)
        cluster.keep_local()
        return _ended(run, engine.search(run, verbose=bool(verbose)))


def resume(name: str, *, address=None, storage=None, wandb=None, results_dir=None, verbose: bool = False) -> Run:
    """Continue an interrupted search (its finished trials and its sampler's history are kept) and return its
    ``Run`` (what ``tunelab resume`` does). ``address``: the Ray cluster to continue on (default: $RAY_ADDRESS, else
    the search's; "local" for a local Ray); ``storage``: the search's storage, if its contents have moved;
    ``wandb``: another W&B mode; ``verbose``: as ``search``'s. Outcomes as ``search``'s."""
    from tunelab import tracking
    from tunelab.engine import cluster, search as engine
    from tunelab.store import runs, study

    _checked(wandb=wandb)
    run = runs.open_run(name, runs.results_root(results_dir))
    if wandb:
        tracking.mode(wandb)  # a mode that cannot work is refused before it is saved with the run
    given = {k: v for k, v in {"storage": cluster.storage(storage), "wandb": wandb}.items() if v}
    if address or os.environ.get("RAY_ADDRESS"):
        given["address"] = cluster.address(address)  # None for "local": a Ray of the search's own
    run.options = dataclasses.replace(run.options, **given)
    with run.locked("resume"):
        if not engine.started(run):  # checked before a moved storage is saved with the run
            raise UserError(
                f"{run.experiment_path} holds no search to continue (no state of Ray's there)"
                + ("; give --storage where the search's trials are" if storage else "")
            )
        study.check(run.study_file, run.spec.argument)
        if given:
            run.save()
        cluster.keep_local()
        return _ended(run, engine.resume(run, verbose=bool(verbose)))


def _ended(stored: runs.StoredRun, board: pd.DataFrame) -> Run:
    """The run of a search that ended, with its warning (some trials failed); a Failed where none finished, which
    carries the run (its leaderboard is written: the command line shows it before the error)."""
    from tunelab.engine import search as engine

    run = Run(stored, board)
    try:
        run.warning = engine.outcome(stored, board)
    except Failed as e:
        e.run = run
        raise
    return run


def open(name: str, results_dir=None) -> Run:
    """The run ``name`` (the experiment's name unless its search had ``name=``), from its folder under
    ``results_dir`` (default: $TUNELAB_RESULTS or ./results)."""
    from tunelab.store import runs

    return Run(runs.open_run(name, runs.results_root(results_dir)))


def compare(*runs_: Run | str, results_dir=None) -> _comparison.Comparison:
    """Two or more runs' best retrained models side by side (what ``tunelab compare`` does), each a ``Run`` or a
    run's name: ROC curves and AUCs of classifiers, reconstructions of the same test images, or samples. The figures
    and the table are written to ``compare_<A>_vs_<B>/`` in the results root (``results_dir``, else the first run's);
    the result has ``figures`` ({caption: path}), ``table`` (a DataFrame, or None) and ``folder``."""
    from tunelab.report import comparison
    from tunelab.store import runs

    first = runs_[0] if runs_ else None
    root = first.dir.parent if isinstance(first, Run) and not results_dir else runs.results_root(results_dir)
    opened = [r.stored if isinstance(r, Run) else runs.open_run(str(r), root) for r in runs_]
    folder, result = comparison.compare(opened, root)
    return dataclasses.replace(result, folder=folder)


def describe(trainable: str | Path, config: dict | str | Path | None = None, dataset: str | None = None,
             data_dir=None) -> str:  # fmt: skip
    """A trainable's layers (what ``tunelab describe`` prints): every intermediate tensor's shape and each layer's
    parameters, and the total. ``trainable``: a registered name, a module or a Python file; ``config``:
    hyperparameters over its defaults, a dict (e.g. a run's ``best_config``) or a YAML file; ``dataset``: the data
    set that sizes the model (default: the trainable's)."""
    from tunelab import data
    from tunelab.spec import description

    return _Text(description.describe(str(trainable), config, dataset, data.data_root(data_dir)))


class _Text(str):
    """Text that a notebook and the REPL show as it reads, not as a quoted string."""

    def __repr__(self) -> str:
        return str(self)


# A run


class Run:
    """A search run: what its folder holds (the leaderboard, the best config, retrained models, the report) and the
    steps after a search (``retrain``, ``report``, ``dashboard``). ``tunelab.search`` and ``tunelab.resume`` return
    one, ``tunelab.open`` reopens one. In Jupyter a run shows its best trials, best config and the report's key
    figures. ``stored`` is the tunelab.store.runs.StoredRun underneath: its spec, options, data root, plan and
    files."""

    def __init__(self, stored: runs.StoredRun, board: pd.DataFrame | None = None):
        self.stored = stored
        self.warning: str | None = None  # set by a search, resume or retrain in which some trials or models failed
        self._board = board  # the leaderboard that the search which returned this run ended with

    def __repr__(self) -> str:
        return f"<tunelab.Run {self.name!r} in {self.dir}>"

    @property
    def name(self) -> str:
        return self.stored.name

    @property
    def dir(self) -> Path:
        """The run's results folder."""
        return self.stored.dir

    @property
    def experiment(self) -> str:
        return self.stored.spec.name

    @property
    def leaderboard(self) -> pd.DataFrame:
        """One row per trial, best first: its status, metrics (with 95 % intervals), epochs, size, time and sampled
        config (``config/`` columns); as the search ended with it, or as the run's leaderboard.csv holds it.
        ``refresh()`` rebuilds it from the trials so far (also while a search runs elsewhere)."""
        return self._board.copy() if self._board is not None else self.stored.leaderboard()

    def refresh(self) -> pd.DataFrame:
        """Rebuild the leaderboard (and best.yaml) from the trials finished so far, as ``tunelab leaderboard`` does,
        also while the search runs in another process; return it."""
        from tunelab import files
        from tunelab.store import leaderboard

        files.writable(self.dir)
        self._board = leaderboard.write(self.stored)
        return self.leaderboard

    @property
    def best_config(self) -> dict:
        """The complete config (the trainable's defaults, the file's constants and the sampled values) of the best
        trial, or of the one the file prefers among those tied with it: the config ``retrain`` trains first."""
        return self._best()["config"]

    def _best(self) -> dict:
        from tunelab.spec import spaces

        path = self.stored.best_file
        if not path.is_file():
            raise UserError(f"run {self.name!r} has no best config yet: no trial has a value of "
                            f"{self.stored.spec.metric} (see its leaderboard)")  # fmt: skip
        best = spaces.read_yaml(path)
        if not isinstance(best, dict) or not isinstance(best.get("config"), dict):
            raise UserError(f"{path}: damaged, it has no config; rebuild it with `tunelab leaderboard {self.name}`")
        return best

    @property
    def retrained(self) -> pd.DataFrame | None:
        """The retrain's test metrics, mean ± std over the seeds of each config (and the ensemble's, if tested);
        None before any retrain. The models' own rows: ``stored.retrain_table()``."""
        from tunelab.store import retrained

        return retrained.table(self.stored) if self.stored.retrain_table() is not None else None

    def retrain(self, top_k=1, seeds=1, ensemble=False, epochs=None, subset=None, wandb=None,
                verbose=False) -> pd.DataFrame:  # fmt: skip
        """Retrain the ``top_k`` best configs with ``seeds`` seeds each on train+validation, test them once on the
        test set and save the models (what ``tunelab retrain`` does); return the test metrics, mean ± std over the
        seeds of each config. ``ensemble``: also test the mean of all the models' predicted class probabilities
        (classifiers). ``epochs``: default a completed trial's best epoch where it peaked before its last, else
        the plan's retrain epochs, else the search's; ``subset``: the fraction of train+validation (default: all of
        it after a planned search, else the search's). A notebook or a terminal shows a progress bar over the
        models' epochs, other output one line per model; ``verbose``: also a line per epoch. Where every model
        failed it raises tunelab.Failed; where some did, ``warning`` says so."""
        from tunelab.engine import retrain

        given = _checked(top_k=top_k, seeds=seeds, epochs=epochs, subset=subset, wandb=wandb)
        with self.stored.locked("retrain"):
            table = retrain.retrain(self.stored, given["top_k"], given["seeds"], given["epochs"], wandb,
                                    given["subset"], ensemble, bool(verbose))  # fmt: skip
        self.warning = None
        try:
            self.warning = retrain.outcome(self.stored)
        except Failed as e:
            e.run = self  # its table is written: the command line shows it before the error
            raise
        return table

    def report(self, wandb=None) -> Path:
        """Write the run's report (figures, report.md and report.html in its report/ folder) and return the path of
        report.md; in Jupyter the report is shown below the cell."""
        from tunelab.report import report

        _checked(wandb=wandb)
        with self.stored.locked("report"):
            path = report.write(self.stored, wandb=wandb)
        if notebook := _notebook():
            notebook.display(notebook.HTML(_report_html(path.parent)))
        return path

    def dashboard(self, port=None) -> str:
        """Serve the run's Optuna study in optuna-dashboard (trials, learning curves, importances) on 127.0.0.1 in
        the background, also while its search runs, and return its address; in Jupyter it is shown below the cell.
        One dashboard per run and process: a second call returns the first's address."""
        from tunelab.report import dashboard

        port = _checked(port=port)["port"]
        key = self.stored.study_file.resolve()
        if key not in _DASHBOARDS:
            storage, _ = dashboard.storage_of(self.dir.parent, self.name)
            server = dashboard.start(storage, port)
            threading.Thread(target=server.serve_forever, name=f"dashboard-{self.name}", daemon=True).start()
            _DASHBOARDS[key] = server
        server = _DASHBOARDS[key]
        address = dashboard.address(server)
        if "google.colab" in sys.modules:  # Colab's browser reaches the kernel's ports only through its proxy
            from google.colab import output

            output.serve_kernel_port_as_iframe(server.server_port, path="/dashboard", height=600)
        elif notebook := _notebook():
            notebook.display(notebook.IFrame(address, width="100%", height=600))
        return address

    def _repr_html_(self) -> str:
        """The run in Jupyter: what it searched, its trials' statuses, the best trial and config, the top 5 rows of
        the leaderboard and, once it has a report, its first figures."""
        from tunelab.store import leaderboard

        spec, esc = self.stored.spec, html.escape
        parts = [f"<h4>tunelab run {esc(self.name)}</h4>",
                 f"<p>Experiment <code>{esc(spec.name)}</code>: {esc(spec.trainable_name)} on {esc(spec.dataset)}, "
                 f"{esc(spec.metric)} ({spec.mode}); folder <code>{esc(str(self.dir))}</code>.</p>"]  # fmt: skip
        try:
            board = self.leaderboard
            if board.empty:
                parts.append("<p>No trials yet.</p>")
            else:
                counts = ", ".join(f"{n} {status}" for status, n in board["status"].value_counts().items())
                parts.append(f"<p>Trials: {esc(counts)}.</p>")
                if self.stored.best_file.is_file():
                    best = self._best()
                    config = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in best["config"].items())  # fmt: skip
                    parts.append(f"<p>Best: trial {esc(str(best.get('trial_id')))}, {esc(spec.metric)} "
                                 f"{best.get('value', math.nan):.4g} at epoch {best.get('best_epoch')}; its config: "
                                 f"<code>{esc(config)}</code></p>")  # fmt: skip
                parts.append(leaderboard.shown(board.head(5), spec).to_html(index=False, float_format="{:.4g}".format))
        except UserError as e:  # a damaged or missing file: its message
            parts.append(f"<p>{esc(str(e))}</p>")
        if self.warning:
            parts.append(f"<p><b>{esc(self.warning)}</b></p>")
        parts += [_figure(caption, self.stored.report_dir / name, "32%") for caption, name in self._figures()[:3]]
        return "\n".join(parts)

    def _figures(self) -> list[tuple[str, str]]:
        """The report's figures, (caption, file name) in its order; none before a report."""
        path = self.stored.report_dir / "report.md"
        return re.findall(r"!\[([^\]]*)\]\(([^)]+)\)", path.read_text()) if path.is_file() else []


_DASHBOARDS: dict = {}  # the dashboards this process serves, by study file: their servers


def _data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _figure(caption: str, path: Path, width: str) -> str:
    if not path.is_file():
        return ""
    return (
        f"<figure style='display:inline-block;width:{width};margin:0 0.5%;vertical-align:top'>"
        f"<img src='{_data_uri(path)}' style='width:100%'><figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _report_html(folder: Path) -> str:
    """report.html as a part of a page: without its own page style, its figures inlined (a notebook's page finds
    no file beside it)."""
    text = (folder / "report.html").read_text().split("</style>", 1)[-1]
    return re.sub(r"src='([^']+)'", lambda m: f"src='{_data_uri(folder / m[1])}' style='max-width:100%'", text)


def _notebook() -> types.ModuleType | None:
    """IPython.display where this runs in a Jupyter kernel (a notebook, Colab), to show things below the cell; else
    None (a script, the command line, a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None or getattr(ipython.get_ipython(), "kernel", None) is None:
        return None
    from IPython import display

    return display
