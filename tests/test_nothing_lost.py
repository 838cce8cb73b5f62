"""Nothing lost (issue 27, item 4): one writer per run folder, a used name refused whatever the storage, a retrain
that keeps the previous one until it succeeds, and files written atomically; through the command line, real files."""

import json
import os
import re
import subprocess
import sys

import optuna
import pytest
import torch

from tests.helpers import write_mnist_like
from tunelab import files
from tunelab.cli import main
from tunelab.engine import retrain
from tunelab.spec import spaces
from tunelab.store import runs, study

IN_USE = r"is in use by PID (\d+) \(tunelab (\w+), since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\); wait for it or stop it$"


def fails(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("tunelab: error: ") and "Traceback" not in err
    return err.strip()


def dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def stale_lock(folder) -> None:
    """The lock file of a search that was killed: it names a process that is gone."""
    folder.mkdir(parents=True, exist_ok=True)
    holder = {"pid": dead_pid(), "command": "tunelab search", "since": "2026-12-07 03:12:05", "host": os.uname()[1]}
    (folder / files.LOCK_FILE).write_text(json.dumps(holder))


def snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def searched(results, data_root, name: str = "fashion_cnn") -> runs.StoredRun:
    """A run of fashion_cnn as a search leaves it for retrain: its spec, a study with one trial, a leaderboard whose
    best trial is a small CNN."""
    run = runs.StoredRun(results / name, spaces.load_spec("fashion_cnn"), runs.Options(), data_root)
    run.save()
    optuna.create_study(study_name=name, storage=study._storage(run.study_file)).ask()
    run.leaderboard_file.write_text("trial_id,status,val_acc,epochs,best_epoch,config/depth,config/width\n"
                                    "t1,completed,0.5,1,1,1,8\n")  # fmt: skip
    run.best_file.write_text("trial_id: t1\n")
    return run


@pytest.mark.slow
def test_two_searches_of_one_name_started_together_one_runs_and_a_stale_lock_is_taken_over(env, fixture_root,
                                                                                          capsys):  # fmt: skip
    folder = env / "results" / "fashion_cnn"
    stale_lock(folder)
    argv = [sys.executable, "-m", "tunelab.cli", "--data-dir", str(fixture_root), "search", "fashion_cnn",
            "--trials", "1", "--max-epochs", "1", "--wandb", "disabled"]  # fmt: skip
    both = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    ended = [(p, *p.communicate(timeout=300)) for p in both]
    assert sorted(p.returncode for p in both) == [0, 2], [err for *_, err in ended]
    (winner, *_), (_, _, err) = sorted(ended, key=lambda e: e[0].returncode)
    assert err.startswith(f"tunelab: error: {folder} is in use by PID {winner.pid} (tunelab search, since ")
    assert re.search(IN_USE, err.strip()) and err.count("\n") == 1
    assert (folder / "leaderboard.csv").is_file() and not (folder / files.LOCK_FILE).exists()

    # the same name with another --storage is refused before anything is written
    kept = snapshot(folder)
    err = fails(capsys, "--data-dir", str(fixture_root), "search", "fashion_cnn", "--storage", str(env / "elsewhere"),
                "--wandb", "disabled")  # fmt: skip
    assert re.search(
        rf"{folder} already holds run fashion_cnn \(searched fashion_cnn on \d{{4}}-\d\d-\d\d \d\d:\d\d, "
        r"1 trial\): continue it with `tunelab resume fashion_cnn`, or choose another --name$",
        err,
    ), err
    assert {"study.log", "tunelab.yaml", "leaderboard.csv", "best.yaml"} <= set(kept)
    assert snapshot(folder) == kept and not (env / "elsewhere").exists()


def test_a_used_name_is_refused_and_a_folder_no_search_got_going_in_is_reused(env, fixture_root, capsys):
    from tunelab.engine import search as engine

    run = runs.StoredRun(env / "results" / "mine", spaces.load_spec("fashion_cnn"),
                         runs.Options(storage=str(env / "s")), fixture_root)  # fmt: skip
    run.save()
    engine.check_unused(run)  # a search that failed before Ray started
    created = optuna.create_study(study_name="mine", storage=study._storage(run.study_file))
    engine.check_unused(run)  # one whose study has no trial yet
    created.ask()
    kept = snapshot(run.dir)
    err = fails(capsys, "--data-dir", str(fixture_root), "search", "fashion_cnn", "--name", "mine", "--storage",
                str(env / "other"))  # fmt: skip
    assert re.search(
        rf"{run.dir} already holds run mine \(searched fashion_cnn on [-\d]+ [:\d]+, 1 trial\): "
        r"continue it with `tunelab resume mine`, or choose another --name$",
        err,
    ), err
    assert snapshot(run.dir) == kept and not (env / "other").exists()


def test_every_writer_of_a_run_folder_is_refused_while_another_holds_it(env, fixture_root, capsys):
    run = searched(env / "results", fixture_root)
    kept = snapshot(run.dir)
    with run.locked("search"):
        for command in ("search", "resume", "retrain", "report"):
            argv = ["--data-dir", str(fixture_root), command, "fashion_cnn", "--wandb", "disabled"]
            err = fails(capsys, *argv)
            assert err.startswith(f"tunelab: error: {run.dir} is in use by PID {os.getpid()} (tunelab search, since ")
            assert re.search(IN_USE, err) and "\n" not in err
    assert snapshot(run.dir) == kept  # the lock file is gone with its holder


def test_a_refused_command_leaves_no_folder_behind(env, fixture_root, capsys):
    fails(capsys, "--data-dir", str(fixture_root), "search", "fashion_cnn", "--wandb", "online")  # no API key
    assert not (env / "results" / "fashion_cnn").exists()


def test_retrain_checks_first_and_keeps_the_previous_retrain_until_the_new_one_succeeds(env, fixture_root, capsys,
                                                                                      monkeypatch):  # fmt: skip
    data = write_mnist_like(env / "data" / "fashion-mnist", n_train=200, n_test=50)
    run = searched(env / "results", data.parent)
    stale_lock(run.dir)  # left by a killed command: taken over
    argv = ["retrain", "fashion_cnn", "--epochs", "1", "--wandb", "disabled"]
    assert main([*argv, "--seeds", "2"]) == 0
    previous = snapshot(run.retrain_dir)
    assert {"retrain.csv", "rank1_seed0.pt", "rank1_seed1.pt"} <= set(previous)
    assert not (run.dir / files.LOCK_FILE).exists()

    assert "--wandb online needs an API key" in fails(capsys, *argv[:-2], "--wandb", "online")
    assert "--ensemble needs at least 2 models" in fails(capsys, *argv, "--seeds", "1", "--ensemble")
    data.rename(data.with_name("moved"))
    assert "data set 'fashion_mnist' not found" in fails(capsys, *argv)
    data.with_name("moved").rename(data)
    real_train = retrain._train

    def fails_second(trainable, config, data, seed, log, shown):  # the second model of the new retrain fails
        if seed == 1:
            raise RuntimeError("CUDA out of memory")
        return real_train(trainable, config, data, seed, log, shown)

    monkeypatch.setattr(retrain, "_train", fails_second)
    with pytest.raises(RuntimeError):
        main([*argv, "--seeds", "2"])
    assert snapshot(run.retrain_dir) == previous
    assert sorted(p.name for p in run.dir.iterdir() if p.name.startswith("retrain")) == ["retrain"]
    monkeypatch.setattr(retrain, "_train", lambda *_: {"status": "failed: the loss is nan", "duration_s": 0.1})
    assert main([*argv, "--seeds", "2"]) == 1  # every model failed: no success to replace the earlier retrain with
    assert snapshot(run.retrain_dir) == previous and not (run.dir / "retrain.new").exists()

    monkeypatch.setattr(retrain, "_train", real_train)
    assert main([*argv, "--seeds", "1"]) == 0  # succeeds: replaces the previous retrain as a whole
    assert "holds an earlier retrain: this one is written to" in capsys.readouterr().out
    assert sorted(p.name for p in run.retrain_dir.iterdir()) == ["rank1_seed0.pt", "retrain.csv"]
    assert len(run.retrain_table()) == 1 and not (run.dir / "retrain.new").exists()


def test_an_atomic_write_that_fails_midway_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "tunelab.yaml"
    path.write_text("old\n")
    for error in (OSError(28, "No space left on device"), KeyboardInterrupt()):
        with pytest.raises(type(error)), files.replacing(path) as temporary:
            temporary.write_text("half of the ne")
            raise error
        assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["tunelab.yaml"]
    files.atomic_write(path, "new\n")
    assert path.read_text() == "new\n" and os.listdir(tmp_path) == ["tunelab.yaml"]


def test_a_checkpoint_whose_save_fails_midway_leaves_the_old_one(env, fixture_root, monkeypatch):
    run = searched(env / "results", fixture_root)
    run.retrain_dir.mkdir()
    run.save_retrained(1, 0, "t1", {"width": 8}, 1.0, {"w": torch.ones(3)})
    saved = run.checkpoint_file().read_bytes()

    def dies_while_writing(obj, path):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_while_writing)
    with pytest.raises(KeyboardInterrupt):
        run.save_retrained(1, 0, "t2", {"width": 16}, 1.0, {"w": torch.zeros(3)})
    assert run.checkpoint_file().read_bytes() == saved and os.listdir(run.retrain_dir) == ["rank1_seed0.pt"]
    assert run.retrained()["trial_id"] == "t1"
