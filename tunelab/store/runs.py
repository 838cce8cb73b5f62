"""The results layout, and the one API to what a run holds: its spec, leaderboard, best config, retrained models.

results/<run>/tunelab.yaml      the resolved spec (trainable, defaults, searched space), options and data root,
                                and the plan of a budgeted search (tunelab.spec.planner), written when the search
                                starts: a run reopens from it alone
results/<run>/trial_*/          Ray's trials, checkpoints and state (unless --storage puts them elsewhere)
results/<run>/study.log         the run's Optuna study, an Optuna journal written as the search runs
(tunelab.store.study):
                                every trial's sampled values, per-epoch metric, state and value(s); always here, on
                                the driver's machine, also with --storage; `tunelab dashboard` serves it
results/<run>/leaderboard.csv   one row per trial, best first (and leaderboard.md); best.yaml: the best config, or the
                                one the spec prefers among those tied with it (``preferred_first``)
results/<run>/retrain/          retrain.csv; rank<k>_seed<s>.pt, each a self-describing checkpoint (trainable, data
                                set and subset, config, weights: ``torch.load(weights_only=True)`` reads it);
                                ensemble.csv (--ensemble), baseline.csv (a trainable's classical baseline)
results/<run>/report/           report.md, report.html and the figures
"""

import dataclasses
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from tunelab import data as datasets, files
from tunelab.errors import UserError
from tunelab.spec import spaces
from tunelab.spec.planner import Plan

INFO_FILE = "tunelab.yaml"
STUDY_FILE = "study.log"
LAYOUT_VERSION = 2  # runs made before the spec was stored resolved do not open


def results_root(cli_value: str | None = None) -> Path:
    return Path(cli_value or os.environ.get("TUNELAB_RESULTS") or "results")


@dataclass
class Options:
    """What the command line may override for one run (None: keep the file's value)."""

    trials: int | None = None
    max_epochs: int | None = None
    time_budget: float | None = None
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    seed: int | None = None
    concurrency: int | None = None
    subset: float = 1.0
    address: str | None = None  # a Ray cluster (tunelab.engine.cluster)
    storage: str | None = None  # where Ray keeps the trials: a shared file system or a bucket (tunelab.engine.cluster)
    wandb: str | None = None
    warm_start: list[str] = dataclasses.field(default_factory=list)  # earlier runs whose trials the study starts from
    no_priors: bool = False  # --no-priors: the file's priors are not evaluated first (tunelab.engine.priors)

    def apply(self, spec: spaces.Spec) -> spaces.Spec:
        changes: dict[str, Any] = {"run_cap": self.trials, "max_epochs": self.max_epochs,
                                   "time_budget_s": self.time_budget, "cpus": self.cpus_per_trial,
                                   "gpus": self.gpus_per_trial, "seed": self.seed}  # fmt: skip
        return dataclasses.replace(spec, **{k: v for k, v in changes.items() if v is not None})


@dataclass
class StoredRun:
    """A search run as stored in its folder (``spec``: with the command line's options applied)."""

    dir: Path
    spec: spaces.Spec
    options: Options
    data_dir: Path
    plan: Plan | None = None  # a budgeted search's (tunelab.engine.calibrate applied it to spec and options)

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def experiment_path(self) -> str:
        """Where Ray keeps the run's trials, checkpoints and state: ``<storage>/<run>``, or the run's folder."""
        return f"{self.options.storage.rstrip('/')}/{self.name}" if self.options.storage else str(self.dir.resolve())

    @property
    def study_file(self) -> Path:
        """The run's Optuna study (an Optuna journal file, see tunelab.store.study)."""
        return self.dir / STUDY_FILE

    @property
    def leaderboard_file(self) -> Path:
        return self.dir / "leaderboard.csv"

    @property
    def best_file(self) -> Path:
        return self.dir / "best.yaml"

    @property
    def retrain_dir(self) -> Path:
        return self.dir / "retrain"

    @property
    def report_dir(self) -> Path:
        return self.dir / "report"

    def locked(self, command: str):
        """A context in which ``tunelab <command>`` alone writes the run's folder (see tunelab.files)."""
        return files.locked(self.dir, f"tunelab {command}")

    def save(self) -> None:
        info = {"layout": LAYOUT_VERSION, "experiment": self.spec.name, "spec": self.spec.saved(),
                "options": dataclasses.asdict(self.options), "data_dir": str(self.data_dir.resolve())}  # fmt: skip
        if self.plan:
            info["plan"] = self.plan.saved()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            files.atomic_write(self.dir / INFO_FILE, yaml.safe_dump(info, sort_keys=False))
        except OSError as e:
            raise UserError(f"cannot write the results folder {self.dir}: {e.strerror}") from None

    # the search's results

    def leaderboard(self) -> pd.DataFrame:
        """The leaderboard as the search (or ``tunelab leaderboard``) wrote it."""
        if not self.leaderboard_file.is_file():
            raise UserError(f"run {self.name!r} has no leaderboard yet: `tunelab leaderboard {self.name}` builds it "
                            f"from the trials finished so far")  # fmt: skip
        text = {f"config/{k}": str for k, v in self.spec.config({}).items() if isinstance(v, str)}  # "3" stays "3"
        return _read(
            self.leaderboard_file,
            f"rebuild it with `tunelab leaderboard {self.name}`",
            ("trial_id", "status", *self.spec.metrics),
            dtype=text | {"trial_id": str},
        )  # ids stay text

    def config_of(self, row: pd.Series) -> dict:
        """The complete config of a leaderboard row."""
        return self.spec.config(sampled(row))

    def ranked(self, top_k: int) -> pd.DataFrame:
        """The ``top_k`` best trials that reached a value of the metric, the one the spec prefers first."""
        board = self.leaderboard()
        ranked = preferred_first(board[board[self.spec.metric].notna()], self.spec.prefer).head(top_k)
        if ranked.empty:
            raise UserError(
                f"run {self.name!r} has no finished trial to retrain; see `tunelab leaderboard {self.name}`"
            )
        return ranked

    # retrained models

    def checkpoint_file(self, rank: int = 1, seed: int = 0) -> Path:
        return self.retrain_dir / f"rank{rank}_seed{seed}.pt"

    def save_retrained(self, rank: int, seed: int, trial_id: str, config: dict, subset: float, weights: dict) -> None:
        """A retrained model as one self-describing file: what it is, what it was trained on, its weights."""
        checkpoint = {"trainable": self.spec.trainable, "dataset": self.spec.dataset, "subset": subset,
                      "trial_id": trial_id, "rank": rank, "seed": seed, "config": config, "model": weights}  # fmt: skip
        with files.replacing(self.checkpoint_file(rank, seed)) as temporary:
            torch.save(checkpoint, temporary)

    def retrained(self, rank: int = 1, seed: int = 0) -> dict:
        """A retrained model's checkpoint (its ``model`` weights on the CPU)."""
        path = self.checkpoint_file(rank, seed)
        if not path.is_file():
            raise UserError(
                f"run {self.name!r} has no retrained model {path.name} yet; run `tunelab retrain {self.name}`"
            )
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, EOFError, RuntimeError, ValueError, pickle.UnpicklingError) as e:  # truncated or not torch's
            why = _first_line(e).split(". ")[0]  # torch's first sentence; the rest is advice
            raise UserError(f"{path}: not a readable checkpoint ({why}); {self._retrain_again}") from None
        keys = ("trainable", "config", "subset", "model")
        missing = [k for k in keys if not isinstance(saved, dict) or k not in saved]
        if missing:
            raise UserError(f"{path}: not a retrained model of tunelab's (no {', '.join(missing)}); "
                            f"{self._retrain_again}")  # fmt: skip
        return saved

    @property
    def _retrain_again(self) -> str:
        return f"write it again with `tunelab retrain {self.name}`"

    def has_retrained(self) -> bool:
        return self.checkpoint_file().is_file()

    def retrained_data(self, device: torch.device) -> datasets.Data:
        """The data set on ``device`` as the best retrained model saw it (its fraction of train+validation, so that a
        text model's vocabulary is rebuilt the same), with the whole test set; ``tunelab.trainable.training.rebuild``
        builds a retrained model on it."""
        subset = self.retrained()["subset"]
        return datasets.load_dataset(self.spec.dataset, self.data_dir, "retrain", subset, device)

    @property
    def retrain_file(self) -> Path:
        return self.retrain_dir / "retrain.csv"

    @property
    def ensemble_file(self) -> Path:
        return self.retrain_dir / "ensemble.csv"

    @property
    def baseline_file(self) -> Path:
        return self.retrain_dir / "baseline.csv"

    def retrain_table(self) -> pd.DataFrame | None:
        """One row per rank and seed, or None before any retrain."""
        return _read(
            self.retrain_file, self._retrain_again, ("rank", "trial_id", "seed", "status"), dtype={"trial_id": str}
        )

    def ensemble_table(self) -> pd.DataFrame | None:
        return _read(
            self.ensemble_file, f"write it again with `tunelab retrain {self.name} --ensemble`", ("members", "models")
        )

    def baseline_table(self) -> pd.DataFrame | None:
        return _read(self.baseline_file, self._retrain_again, ("model",))


def _read(path: Path, remedy: str, columns: tuple[str, ...], **options) -> pd.DataFrame | None:
    """A table tunelab wrote into a run (None where there is none). A damaged one (empty, truncated, not CSV, without
    the ``columns`` tunelab reads) is a UserError naming it, with ``remedy``: the command that writes it again."""
    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path, **options)
    except (OSError, ValueError) as e:  # pandas' EmptyDataError and ParserError, UnicodeDecodeError: ValueErrors
        raise UserError(f"{path}: damaged, cannot read it as CSV ({_first_line(e)}); {remedy}") from None
    missing = [c for c in columns if c not in frame]
    if missing:
        raise UserError(f"{path}: damaged, it has no column {', '.join(missing)}; {remedy}")
    return frame


def _first_line(error: Exception) -> str:
    """An exception's message, for a one-line error."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def preferred_first(board: pd.DataFrame, prefer: str) -> pd.DataFrame:
    """``board`` (best first) with the trial that ``prefer`` (tunelab.spec.spaces.PREFER) takes among those tied with
    the best moved first: the fewest parameters (small) or the least time per epoch (fast), the better of equal ones. A
    board without ``tied`` (several objectives, a leaderboard of an older tunelab) stays as it is."""
    if prefer == "best" or "tied" not in board:
        return board
    tied = board[board["tied"].eq(True)]  # empty ("—"): not known to be tied
    if tied.empty:
        return board
    cost = tied["params"] if prefer == "small" else tied["duration_s"] / tied["epochs"]
    first = cost.idxmin()  # the first of equal ones: the better
    return pd.concat([board.loc[[first]], board.drop(index=first)])


def sampled(row: pd.Series) -> dict:
    """A leaderboard row's searched values (its ``config/`` columns), as Python values."""
    return {k.removeprefix("config/"): plain(v) for k, v in row.items() if k.startswith("config/") and pd.notna(v)}


def plain(v):
    """numpy scalars -> Python values (for YAML and for configs)."""
    return v.item() if hasattr(v, "item") else v


def open_run(name: str, root: Path) -> StoredRun:
    """A run by name (the experiment's name unless the search was given --name)."""
    folder = root / name
    info_file = folder / INFO_FILE
    if not info_file.is_file():
        runs = sorted(p.parent.name for p in root.glob(f"*/{INFO_FILE}"))
        start = (
            f"`tunelab search {name}`"
            if name in spaces.experiments()
            else f"`tunelab search EXPERIMENT --name {name}` (`tunelab list` shows the experiments)"
        )
        raise UserError(
            f"no search run {name!r} in {root}; runs there: {', '.join(runs) or '(none)'}. Start one with {start}"
        )
    again = f"search again (`tunelab search EXPERIMENT --name {name}-new`)"  # a damaged file names no experiment
    try:
        info = spaces.read_yaml(info_file)
    except UserError as e:
        raise UserError(f"{e}; {again}") from None
    if not isinstance(info, dict):
        raise UserError(f"{info_file}: damaged, not the mapping that `tunelab search` writes; {again}")
    if info.get("layout") != LAYOUT_VERSION:  # runs of layout 1 had no layout key
        raise UserError(f"{info_file} was written by an older tunelab, which stored runs differently: search "
                        f"again (`tunelab search {info.get('experiment', name)} --name {name}-new`)")  # fmt: skip
    try:
        plan = Plan.restore(info["plan"]) if info.get("plan") is not None else None
        return StoredRun(folder, spaces.restore(info["spec"]), Options(**info["options"]), Path(info["data_dir"]), plan)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # truncated or edited: a key missing, a wrong type
        raise UserError(f"{info_file}: damaged ({type(e).__name__}: {_first_line(e)}); {again}") from None
