"""Weights & Biases: the only module that imports wandb.

With no API key it runs offline (runs are written under the results folder and can be synced later with
``wandb sync``): never a login prompt, never a hang. ``disabled`` turns it off.
"""

import netrc
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tunelab import UserError

MODES = ("online", "offline", "disabled")


def _has_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def configure(mode: str | None, run_dir: Path) -> str:
    """Resolve the mode (default: online with a key, else offline) and set W&B's environment for this
    process and the Ray workers it starts. Returns the mode in force."""
    mode = mode or os.environ.get("WANDB_MODE") or ("online" if _has_key() else "offline")
    if mode not in MODES:
        raise UserError(f"--wandb {mode!r} is not allowed; allowed: {', '.join(MODES)}")
    if mode == "online" and not _has_key():
        raise UserError("--wandb online needs an API key: set WANDB_API_KEY or run `wandb login` (or use --wandb offline)")
    os.environ.update(WANDB_MODE=mode, WANDB_DIR=str(run_dir.resolve()), WANDB_SILENT="true", WANDB_CONSOLE="off")
    return mode


def trial_callbacks(mode: str, project: str, group: str) -> list:
    """Ray Tune callbacks that log one W&B run per trial (config and per-epoch metrics), grouped by run."""
    if mode == "disabled":
        return []
    from ray.air.integrations.wandb import WandbLoggerCallback

    class EndingWandbLoggerCallback(WandbLoggerCallback):
        """Ends the W&B runs of trials still running when the search ends (its time budget, Ctrl-C): Ray's
        callback waits for them to end by themselves, up to 30 minutes, before the search returns."""

        def on_experiment_end(self, trials, **info):
            for trial in list(self._trial_logging_actors):
                self._signal_logging_actor_stop(trial=trial)
            super().on_experiment_end(trials, **info)

    return [EndingWandbLoggerCallback(project=project, group=group, job_type="search", mode=mode, dir=os.environ["WANDB_DIR"])]


class _Run:
    def __init__(self, run: Any):
        self._run = run

    def log(self, metrics: dict[str, float]) -> None:
        if self._run is not None:
            self._run.log(metrics)

    def log_images(self, images: dict[str, Path]) -> None:
        if self._run is not None:
            import wandb

            self._run.log({caption: wandb.Image(str(path)) for caption, path in images.items()})


@contextmanager
def run(mode: str, project: str, group: str, job_type: str, name: str, config: dict) -> Iterator[_Run]:
    """A W&B run outside Ray (retrain, report); a no-op when disabled."""
    if mode == "disabled":
        yield _Run(None)
        return
    import wandb

    with wandb.init(project=project, group=group, job_type=job_type, name=name, config=config, mode=mode,
                    dir=os.environ.get("WANDB_DIR"), reinit="create_new") as r:
        yield _Run(r)
