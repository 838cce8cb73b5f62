"""The results layout: one folder per search run under the results root, and what a run remembers.

results/<run>/            Ray's trial folders and state (unless --storage puts them elsewhere), tunelab.yaml
                          (the spec and options of the run)
results/<run>/leaderboard.csv, leaderboard.md, best.yaml
results/<run>/retrain/    retrain.csv and the retrained weights; ensemble.csv (--ensemble), baseline.csv (text)
results/<run>/report/     report.md, report.html and the figures
"""

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from tunelab import UserError, spaces

INFO_FILE = "tunelab.yaml"


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
    address: str | None = None  # a Ray cluster (tunelab.cluster)
    storage: str | None = None  # where Ray keeps the trials: a shared file system or a bucket (tunelab.cluster)
    wandb: str | None = None

    def apply(self, spec: spaces.Spec) -> spaces.Spec:
        changes = {"run_cap": self.trials, "max_epochs": self.max_epochs, "time_budget_s": self.time_budget,
                   "cpus": self.cpus_per_trial, "gpus": self.gpus_per_trial, "seed": self.seed}  # fmt: skip
        return dataclasses.replace(spec, **{k: v for k, v in changes.items() if v is not None})


@dataclass
class Run:
    """A search run as stored in its folder."""

    dir: Path
    spec: spaces.Spec
    options: Options
    data_dir: Path

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def experiment_path(self) -> str:
        """Where Ray keeps the run's trials, checkpoints and state: ``<storage>/<run>``, or the run's folder."""
        return f"{self.options.storage.rstrip('/')}/{self.name}" if self.options.storage else str(self.dir.resolve())

    def save(self) -> None:
        info = {"experiment": self.spec.name, "spec_file": str(self.spec.path.resolve()), "spec": self.spec.raw,
                "options": dataclasses.asdict(self.options), "data_dir": str(self.data_dir.resolve())}  # fmt: skip
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / INFO_FILE).write_text(yaml.safe_dump(info, sort_keys=False))
        except OSError as e:
            raise UserError(f"cannot write the results folder {self.dir}: {e.strerror}") from None


def open_run(name: str, root: Path) -> Run:
    """A run by name (the experiment's name unless the search was given --name)."""
    folder = root / name
    info_file = folder / INFO_FILE
    if not info_file.is_file():
        runs = sorted(p.parent.name for p in root.glob(f"*/{INFO_FILE}"))
        raise UserError(
            f"no search run {name!r} in {root}; runs there: {', '.join(runs) or '(none)'}. "
            f"Start one with `tunelab search {name}`"
        )
    info = yaml.safe_load(info_file.read_text())
    options = Options(**info["options"])
    spec = options.apply(spaces.parse(info["spec"], Path(info["spec_file"])))
    return Run(folder, spec, options, Path(info["data_dir"]))
