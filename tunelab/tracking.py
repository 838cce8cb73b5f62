"""Weights & Biases: the only module that imports wandb.

With no API key it runs offline (runs are written under the results folder and can be synced later with
``wandb sync``): never a login prompt, never a hang. With a key but no answer from W&B's server it runs offline
too, saying so (``--wandb online`` is then refused before anything starts); a run that W&B refuses to start is
not logged, with a warning, and the trials after it log offline: a search never stops for W&B. ``disabled`` turns
it off.
"""

import netrc
import os
import sys
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

from ray.tune import Callback

from tunelab.errors import UserError

MODES = ("online", "offline", "disabled")
# Besides WANDB_BASE_URL's, the hosts under which `wandb login` keeps a key in ~/.netrc: W&B's API and, since
# wandb 0.31, its default base URL
KEY_HOSTS = ("api.wandb.ai", "api.forge.coreweave.com")
ANSWER_S = 5.0  # how long W&B's server has to answer before a search logs offline


def _has_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    hosts = [urlsplit(os.environ.get("WANDB_BASE_URL", "")).hostname, *KEY_HOSTS]
    try:
        entries = netrc.netrc().hosts
    except (OSError, netrc.NetrcParseError):
        return False
    return any(host in entries for host in hosts)


def mode(requested: str | None) -> str:
    """The mode in force: ``--wandb``, else ``WANDB_MODE``, else online with a key and offline without one (or
    when W&B's server does not answer); a mode that cannot work is refused."""
    chosen = requested or os.environ.get("WANDB_MODE")
    mode = chosen or ("online" if _has_key() else "offline")
    if mode not in MODES:
        source = "--wandb" if requested else "WANDB_MODE"
        raise UserError(f"{source} {mode!r} is not allowed; allowed: {', '.join(MODES)}")
    if mode == "online" and not _has_key():
        raise UserError(
            "--wandb online needs an API key: set WANDB_API_KEY or run `wandb login` (or use --wandb offline)"
        )
    if mode == "online" and (silence := _no_answer()):
        if chosen:
            flag = "--wandb online" if requested else "WANDB_MODE=online"
            raise UserError(
                f"{flag}: W&B's server {silence}. Use --wandb offline: the runs are kept in the run's "
                "folder, and `wandb sync` uploads them later"
            )
        print(f"W&B's server {silence}: logging offline (`wandb sync` uploads the runs later)", file=sys.stderr)
        return "offline"
    return mode


def _no_answer() -> str | None:
    """What keeps W&B's server (wandb's base URL) from answering within ANSWER_S, or None: any HTTP answer will do
    (a search without network would otherwise wait 90 s for each trial's run, then fail)."""
    import wandb

    url = wandb.setup().settings.base_url
    try:
        urllib.request.urlopen(url, timeout=ANSWER_S).close()
    except urllib.error.HTTPError:  # an answer, if not a page
        return None
    except (urllib.error.URLError, OSError) as e:
        return f"{url} does not answer ({getattr(e, 'reason', e)})"
    return None


def _init(mode: str, **kwargs):
    """``wandb.init``; where W&B cannot start the run (a wrong key, a lost network, a full disk) a disabled run that
    logs nothing instead, with a warning: a search never stops for W&B."""
    import wandb

    try:  # the ignore: wandb wants a Literal, and mode is one of MODES (mode() checked it) as a str
        return wandb.init(mode=mode, **kwargs)  # type: ignore[arg-type]
    except Exception as e:  # wandb.errors.Error, and the service's own errors, which are plain Exceptions
        print(f"W&B: run {kwargs.get('name')} not logged: it could not start {mode} ({e})", file=sys.stderr)
        return wandb.init(mode="disabled", **kwargs)


def _settings(requirements: bool = True):
    """``requirements``: the run keeps the list of installed packages. Listing them takes 0.15 s of the driver per
    run, between two trials: a search's trials leave it to its leaderboard's run, which has the same list."""
    import wandb

    return wandb.Settings(
        silent=True, console="off", x_transaction_log_flush_interval=FLUSH_S, x_save_requirements=requirements
    )


def warm_up(mode: str) -> None:
    """Import W&B and start its service in a thread while the search's first worker starts: 2 s of the driver that
    the first trial would otherwise wait for."""
    if mode != "disabled":
        threading.Thread(target=_setup, name="wandb-warm-up", daemon=True).start()


def _setup() -> None:
    import wandb
    import wandb.sdk.launch  # noqa: F401  (what the first wandb.init imports: 1 s)

    wandb.setup()


def trial_callbacks(mode: str, project: str, group: str, config_of: Callable[[dict], dict], run_dir: Path) -> list:
    """Ray Tune callbacks that log one W&B run per trial (its whole config, ``config_of`` its sampled values, and
    per-epoch metrics), grouped by run, written under ``run_dir``; the runs live in the driver's process, so no
    trial starts a process of its own for them."""
    return [] if mode == "disabled" else [TrialRuns(mode, project, group, config_of, str(run_dir.resolve()))]


def trial_run_id(trial_id: str) -> str:
    """The id of a trial's W&B run: its Ray trial id (a restarted or resumed trial continues its run)."""
    return trial_id


# A trial's W&B run reaches its file this often (W&B's default: 15 s), well within the second by which Ray's saved
# state of the search lags: a killed driver loses no epoch that its resume does not run again.
FLUSH_S = 0.2


class TrialRuns(Callback):
    """One W&B run per trial, opened when the trial starts and finished when it ends or the search does (its
    time budget, Ctrl-C). A restarted or resumed trial continues its run (its id is the trial's)."""

    SKIPPED = {"config", "trial_id", "date", "hostname", "node_ip", "node_id", "pid", "done", "should_checkpoint"}

    def __init__(self, mode: str, project: str, group: str, config_of: Callable[[dict], dict], folder: str):
        self.mode, self.project, self.group, self.config_of, self.folder = mode, project, group, config_of, folder
        self._runs: dict[str, Any] = {}

    def __getstate__(self) -> dict:  # Ray saves its callbacks with the search's state; open runs stay here
        return self.__dict__ | {"_runs": {}}

    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.trial_id in self._runs:
            return
        run = self._runs[trial.trial_id] = _init(
            self.mode, project=self.project, group=self.group, job_type="search", name=trial.trial_id,
            id=trial_run_id(trial.trial_id), config=self.config_of(trial.config), dir=self.folder,
            reinit="create_new", resume="allow", settings=_settings(requirements=False),
        )  # fmt: skip
        if run.disabled:  # W&B refused it: the next trials' runs are written offline, without waiting for its server
            self.mode = "offline"

    def on_trial_result(self, iteration, trials, trial, result, **info):
        run = self._runs.get(trial.trial_id)
        if run is not None:
            run.log({k: v for k, v in result.items() if k not in self.SKIPPED and isinstance(v, (int, float))})

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial.trial_id, 0)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial.trial_id, 1)

    def on_experiment_end(self, trials, **info):
        for trial_id in list(self._runs):
            self._finish(trial_id, 0)

    def _finish(self, trial_id: str, exit_code: int) -> None:
        run = self._runs.pop(trial_id, None)
        if run is not None:
            run.finish(exit_code=exit_code)


class _WandbRun:
    def __init__(self, run: Any):
        self._run = run

    def log(self, metrics: dict[str, float]) -> None:
        if self._run is not None:
            self._run.log(metrics)

    def log_images(self, images: dict[str, Path]) -> None:
        if self._run is not None:
            import wandb

            self._run.log({caption: wandb.Image(str(path)) for caption, path in images.items()})


LEADERBOARD_ID = "leaderboard-"  # the W&B run of a search's leaderboard: this and 8 random hex digits


def log_leaderboard(mode: str, project: str, group: str, board, run_dir: Path) -> None:
    """The search's leaderboard (a DataFrame, best first) as a W&B table in a run of its own (job type
    ``leaderboard``, in the run's group beside the trials' runs), with each trial's W&B run id; each search and
    each resume logs one, written under ``run_dir``."""
    if mode == "disabled" or board.empty:
        return
    import wandb

    table = board.copy()
    table.insert(1, "wandb_run_id", table["trial_id"].astype(str).map(trial_run_id))
    with _init(mode, project=project, group=group, job_type="leaderboard", name=f"{group}-leaderboard",
               id=LEADERBOARD_ID + uuid.uuid4().hex[:8], dir=str(run_dir.resolve()), reinit="create_new",
               settings=_settings()) as r:  # fmt: skip
        r.log({"leaderboard": wandb.Table(dataframe=table)})


@contextmanager
def wandb_run(
    mode: str,
    project: str,
    group: str,
    job_type: str,
    name: str,
    config: dict,
    run_dir: Path,
) -> Iterator[_WandbRun]:
    """A W&B run outside Ray (retrain, report), written under ``run_dir``; a no-op when disabled."""
    if mode == "disabled":
        yield _WandbRun(None)
        return
    with _init(
        mode,
        project=project,
        group=group,
        job_type=job_type,
        name=name,
        config=config,
        dir=str(run_dir.resolve()),
        reinit="create_new",
        settings=_settings(),
    ) as r:
        yield _WandbRun(r)
