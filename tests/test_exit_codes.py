"""The exit codes a script sees (0: a search that ran to its end with a finished trial, 1: every trial failed, 2: bad
input, 130: Ctrl-C) and `tunelab resume`'s flags, through `python -m tunelab` as a user types it: real Ray (local),
real Optuna journal, a student's model that fails (or sleeps) where a test wants it to."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from tests.helpers import write_student_model
from tunelab.engine import retrain
from tunelab.errors import Failed
from tunelab.store import runs, study

pytestmark = pytest.mark.slow

TRAIN_EPOCH = "def train_epoch(parts, data, config):\n"


def _student(folder: Path, prologue: str, parameters: dict, **sweep) -> Path:
    """The student's mlp.py with ``prologue`` at the top of train_epoch, and NAME.yaml (grid over ``parameters``)."""
    write_student_model(folder, {})
    source = (folder / "mlp.py").read_text()
    (folder / "mlp.py").write_text("import time\n" + source.replace(TRAIN_EPOCH, TRAIN_EPOCH + prologue))
    space = {"trainable": "mlp.py", "method": "grid", "metric": {"name": "val_acc", "goal": "maximize"},
             "max_epochs": 1, "parameters": parameters} | sweep  # fmt: skip
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def _environ(results: Path) -> dict:
    drop = ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "TUNELAB_LOCAL_COPIES", "RAY_ADDRESS")
    return {k: v for k, v in os.environ.items() if k not in drop} | {"TUNELAB_RESULTS": str(results),
                                                                      "PYTHONUNBUFFERED": "1"}  # fmt: skip


def _tunelab(results: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunelab", *argv], capture_output=True, text=True, timeout=timeout,
                          env=_environ(results))  # fmt: skip


def _last_line(done: subprocess.CompletedProcess) -> str:
    return done.stderr.strip().splitlines()[-1]


FAIL_16 = '    if config["hidden"] == 16:\n        raise ValueError("hidden 16 is not allowed here")\n'


def test_every_trial_failed_exits_1_with_the_first_error_and_its_file(env, tmp_path, fixture_root):
    space = _student(tmp_path / "hw", FAIL_16, {"hidden": {"values": [16]}, "lr": {"values": [0.01, 0.02]}})
    done = _tunelab(env / "results", "--data-dir", str(fixture_root), "search", str(space), "--wandb", "disabled")
    assert done.returncode == 1, done.stdout + done.stderr
    line = _last_line(done)
    error = env / "results" / "sweep" / f"trial_{pd.read_csv(env / 'results/sweep/leaderboard.csv')['trial_id'][0]}"
    assert line == (f"tunelab: error: every trial of run 'sweep' failed (2); the first: "
                    f"ValueError: hidden 16 is not allowed here (see {error.resolve()}/error.txt)"), line  # fmt: skip


def test_some_trials_failed_exits_0_with_a_warning(env, tmp_path, fixture_root):
    space = _student(tmp_path / "hw", FAIL_16, {"hidden": {"values": [16, 32]}})
    done = _tunelab(env / "results", "--data-dir", str(fixture_root), "search", str(space), "--wandb", "disabled")
    assert done.returncode == 0, done.stdout + done.stderr
    line = _last_line(done)
    assert line.startswith(
        "warning: 1 of 2 trials failed; the first: ValueError: hidden 16 is not allowed here (see "
        f"{(env / 'results' / 'sweep').resolve()}/trial_"
    ) and line.endswith("/error.txt)"), line
    assert "# Leaderboard: sweep" in done.stdout


# Ctrl-C once the first trial has reported (each epoch sleeps, so that the search is mid-way), then resume: the run
# itself, and a copy of it under another name (its study is named after the first run, and Ray's saved state holds
# the first run's paths), moved from a cluster back to a local Ray and with another W&B mode.

SLEEP = "    time.sleep(1)\n"


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, fixture_root) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("exit_codes")
    results = base / "results"
    space = _student(base / "hw", SLEEP, {"hidden": {"values": [8, 16, 24, 32]}}, max_epochs=3)
    cmd = [sys.executable, "-m", "tunelab", "--data-dir", str(fixture_root), "search", str(space), "--name", "first",
           "--concurrency", "1", "--wandb", "offline"]  # fmt: skip
    search = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environ(results))
    deadline = time.monotonic() + 180
    while not any(p.stat().st_size for p in (results / "first").glob("trial_*/result.json")):
        assert search.poll() is None and time.monotonic() < deadline, search.communicate()
        time.sleep(0.2)
    search.send_signal(signal.SIGINT)
    out, err = search.communicate(timeout=180)
    for name in ("copy", "nostudy"):  # the interrupted run as it was, under other names
        shutil.copytree(results / "first", results / name)
    return SimpleNamespace(results=results, code=search.returncode, out=out, err=err)


def _files(folder: Path) -> dict[Path, bytes]:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_ctrl_c_exits_130_and_resume_finishes_the_search(interrupted):
    assert interrupted.code == Failed.INTERRUPTED, interrupted.out + interrupted.err
    assert interrupted.err.strip().splitlines()[-1] == (
        "interrupted: `tunelab resume first` continues the search where it stopped"
    )
    board = pd.read_csv(interrupted.results / "first" / "leaderboard.csv")
    assert board["status"].isin(["interrupted", "pending"]).any(), board

    done = _tunelab(interrupted.results, "resume", "first")
    assert done.returncode == 0, done.stdout + done.stderr
    board = pd.read_csv(interrupted.results / "first" / "leaderboard.csv")
    assert len(board) == 4 and (board["status"] == "completed").all(), board


def test_a_copied_run_resumes_on_a_local_ray_with_the_wandb_mode_given(interrupted):
    results = interrupted.results
    first = _files(results / "first")
    logged = sorted((results / "copy" / "wandb").glob("*run-*"))  # the search's, offline
    info = yaml.safe_load((results / "copy" / runs.INFO_FILE).read_text())
    info["options"]["address"] = "10.0.0.1:6379"  # as if the search had run on a cluster that is gone now
    (results / "copy" / runs.INFO_FILE).write_text(yaml.safe_dump(info, sort_keys=False))

    done = _tunelab(results, "resume", "copy", "--address", "local", "--wandb", "disabled")
    assert done.returncode == 0, done.stdout + done.stderr
    saved = yaml.safe_load((results / "copy" / runs.INFO_FILE).read_text())["options"]
    assert (saved["address"], saved["wandb"]) == (None, "disabled")
    run = runs.open_run("copy", results)
    board = run.leaderboard()
    assert len(board) == 4 and (board["status"] == "completed").all(), board
    trials = study.open_study(run).trials  # the copy's own study (named after the first run) has every trial, finished
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert {t.user_attrs["ray_trial_id"] for t in trials} == set(board["trial_id"])
    assert logged and sorted((results / "copy" / "wandb").glob("*run-*")) == logged  # W&B disabled, as given
    assert _files(results / "first") == first  # nothing written where the copy came from


def test_resume_without_a_study_file_is_a_clear_error(interrupted):
    (interrupted.results / "nostudy" / runs.STUDY_FILE).unlink()
    done = _tunelab(interrupted.results, "resume", "nostudy")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"tunelab: error: {interrupted.results / 'nostudy' / runs.STUDY_FILE} does not "
                                  f"exist: run 'nostudy' has no Optuna study"), done.stderr  # fmt: skip


def test_a_retrain_whose_every_model_failed_is_a_failure(tmp_path):
    run = SimpleNamespace(name="r", retrain_table=lambda: table)
    table = pd.DataFrame({"rank": [1, 1], "trial_id": ["a", "a"], "seed": [0, 1], "status": ["completed"] * 2})
    assert retrain.outcome(run) is None
    table.loc[1, "status"] = "failed: loss became nan (the loss diverged)"
    assert retrain.outcome(run) == ("warning: 1 of 2 retrained models failed; the first: rank 1 seed 1 (trial a) "
                                    "failed: loss became nan (the loss diverged)")  # fmt: skip
    table.loc[0, "status"] = "failed: loss became inf (the loss diverged)"
    with pytest.raises(Failed, match=r"^every retrained model of run 'r' failed \(2\); the first: rank 1 seed 0 "):
        retrain.outcome(run)
