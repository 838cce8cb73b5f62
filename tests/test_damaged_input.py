"""Damaged input gives one line, never a traceback (issue 27, item 3): each case runs through the command line as a
user types it and must exit 2 with ``tunelab: error: <file>: <what is wrong>``. Space files, data files and most
run files fail before Ray starts, so no search runs here."""

import os
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.helpers import SMALL_CNN, retrained_run, write_mnist_like, write_pneumoniamnist, write_weather
from tunelab.cli import main

RUN = "small_cnn"  # the run `tunelab search SMALL_CNN` makes: the file's stem


def one_line_error(capsys, argv, *names) -> str:
    """Run ``tunelab argv``; assert exit 2 and a single error line naming each of ``names``; return that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note: ")]  # a subset's note
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("tunelab: error: "), err
    for name in names:
        assert str(name) in lines[0], err
    return lines[0]


def space(tmp_path, text: str | bytes, name: str = "space.yaml"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def quick(**changes) -> str:
    raw = yaml.safe_load(SMALL_CNN.read_text())
    raw.pop("baseline", None)  # the cases change what it would refer to
    return yaml.safe_dump(raw | changes)


# Search-space files: `tunelab search FILE` reads the file before anything else.

LOG_LR = {"lr": {"distribution": "log_uniform", "min": -5, "max": 1000}}


@pytest.mark.parametrize(("text", "message"), [
    (b"\x89PNG\r\n\x1a\n\x00\xff", "not a YAML text file (byte 0x89 at offset 0 is not UTF-8)"),
    ("method: bayes  # caf\xe9\n".encode("latin-1"), "not a YAML text file (byte 0xe9"),
    ("method: bayes\nkey: \x00\n", "YAML syntax error: special characters are not allowed"),
    (quick(dataset=["fashion_mnist"]), "dataset: unknown data set ['fashion_mnist']"),
    (quick(method=["bayes"]), "method: ['bayes'] is not allowed"),
    (quick(trainable=["cnn_classifier"]), "trainable: required"),
    (quick(metric={"name": ["val_acc"], "goal": "maximize"}), "metric: must be {name: <metric>"),
    (quick(parameters={"lr": {"distribution": ["uniform"], "min": 0.1, "max": 1}}), "unknown distribution ['uniform']"),
    (quick(parameters={"lr": {1: 2, "colour": 3}}), "unknown key(s) 1, colour"),
    (quick(parameters=LOG_LR), "parameters.lr: log_uniform's min and max are exponents of e, within ±700"),
    (quick(parameters={"lr": {"distribution": "uniform", "min": float("nan"), "max": 1}}), "needs finite numbers"),
    (quick(parameters={"lr": {"distribution": "uniform", "min": 0.1, "max": float("inf")}}), "needs finite numbers"),
    (quick(parameters={"dropout": {"distribution": "q_uniform", "min": 0, "max": 0.5, "q": float("inf")}}),
     "needs finite numbers"),
    (quick(parameters={"lr": {"value": float("nan")}, "width": {"values": [8, 16]}}), "parameters.lr: nan:"),
    (quick(parameters={"lr": {"values": [float("inf"), 0.1]}}), "parameters.lr: inf: YAML's .nan and .inf"),
    (quick(seed=2**32), "seed: must be an integer >= 0 and < 4294967296, not 4294967296"),
    (quick(method="grid", parameters={"width": {"distribution": "int_uniform", "min": 1, "max": 100_000},
                                      "batch_size": {"distribution": "int_uniform", "min": 1, "max": 100_000}}),
     "parameters: the grid has 10,000,000,000 points (batch_size 100,000 x width 100,000), more than a search can run"),
])  # fmt: skip
def test_a_damaged_search_space_is_one_line(env, capsys, text, message):
    path = space(env, text)
    assert message in one_line_error(capsys, ["search", str(path)], path)


def test_keys_of_mixed_types_are_each_one_line(env, capsys):
    """Two mistakes, a line each (keys that are numbers and strings do not sort together)."""
    path = space(env, quick() + "1: x\ncolour: red\n")
    assert main(["search", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"tunelab: error: {path}: 1: unknown key; allowed: {ALLOWED}",
                                f"{path}: colour: unknown key; allowed: {ALLOWED}"]  # fmt: skip


ALLOWED = ("ablation, baseline, command, compare_with, dataset, description, early_terminate, entity, max_epochs, "
           "method, metric, name, parameters, prefer, priors, program, project, resources, run_cap, seed, targets, "
           "time_budget_s, trainable")  # fmt: skip


def test_a_grid_is_counted_not_built(env, capsys):
    """A grid of 10^18 points is refused at once (listing its values would take all the memory there is)."""
    huge = {"width": {"distribution": "int_uniform", "min": 1, "max": 10**9},
            "batch_size": {"distribution": "int_uniform", "min": 1, "max": 10**9}}  # fmt: skip
    path = space(env, quick(method="grid", parameters=huge))
    assert "1,000,000,000,000,000,000 points" in one_line_error(capsys, ["search", str(path)], path)


def test_a_seed_too_large_for_numpy_on_the_command_line(env, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["search", str(SMALL_CNN), "--seed", str(2**32)])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].endswith("argument --seed: must be below 2**32 (4294967296), not 4294967296")


def test_a_folder_where_the_search_space_file_belongs(env, capsys):
    path = env / "space.yaml"
    path.mkdir()
    assert "cannot read it: Is a directory" in one_line_error(capsys, ["search", str(path)], path)


@pytest.mark.parametrize(("text", "message"), [
    (b"\xff\xfe\x00garbage", "not a YAML text file"),
    ("lr: 0.1\n1: 2\n", "unknown hyperparameter(s) 1; allowed"),
    ("config:\n  lr: [0.1\n", "YAML syntax error"),
])  # fmt: skip
def test_describe_with_a_damaged_config(env, capsys, fixture_root, text, message):
    path = space(env, text, "best.yaml")
    argv = ["describe", "cnn_classifier", "--config", str(path), "--data-dir", str(fixture_root)]
    assert message in one_line_error(capsys, argv, path)


# Run files: a run with a retrained model but no search (tests.helpers.retrained_run).


@pytest.fixture
def run(env, fixture_root):
    return retrained_run(env / "results", SMALL_CNN, fixture_root)


def truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage", ["truncated", "empty", "binary", "a list"])
@pytest.mark.parametrize("command", [["leaderboard", RUN], ["retrain", RUN], ["report", RUN],
                                     ["dashboard", RUN], ["compare", RUN, "other"]])  # fmt: skip
def test_a_damaged_tunelab_yaml(run, capsys, damage, command):
    info = run.dir / "tunelab.yaml"
    shutil.copytree(run.dir, run.dir.parent / "other")
    {"truncated": truncate, "empty": lambda p: p.write_text(""), "binary": lambda p: p.write_bytes(b"\x80\x81\x82"),
     "a list": lambda p: p.write_text("- 1\n- 2\n")}[damage](info)  # fmt: skip
    line = one_line_error(capsys, command, info)
    assert f"search again (`tunelab search EXPERIMENT --name {RUN}-new`)" in line


@pytest.mark.parametrize(("content", "message"), [
    (b"", "cannot read it as CSV (No columns to parse from file)"),
    (b"\n", "cannot read it as CSV (No columns to parse from file)"),
    (b'trial_id,status,val_acc\n1,completed,"0.5\n', "cannot read it as CSV (Error tokenizing data"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "cannot read it as CSV"),
    (b"trial_id,status\n1,completed\n", "it has no column val_acc"),
])  # fmt: skip
def test_a_damaged_leaderboard_csv(run, capsys, content, message):
    run.leaderboard_file.write_bytes(content)
    line = one_line_error(capsys, ["retrain", RUN, "--seeds", "1"], run.leaderboard_file)
    assert message in line and f"rebuild it with `tunelab leaderboard {RUN}`" in line


@pytest.mark.parametrize("damage", [truncate, lambda p: p.write_bytes(b"garbage"), lambda p: p.write_bytes(b"")])
def test_a_damaged_checkpoint(run, capsys, damage):
    shutil.copytree(run.dir, run.dir.parent / "other")
    damage(run.checkpoint_file())
    line = one_line_error(capsys, ["compare", RUN, "other"], run.checkpoint_file())
    assert "not a readable checkpoint" in line and f"write it again with `tunelab retrain {RUN}`" in line


def test_a_checkpoint_that_is_not_tunelabs(run, capsys):
    import torch

    shutil.copytree(run.dir, run.dir.parent / "other")
    torch.save({"weights": torch.zeros(2)}, run.checkpoint_file())
    line = one_line_error(capsys, ["compare", RUN, "other"], run.checkpoint_file())
    assert "not a retrained model of tunelab's (no trainable, config, subset, model)" in line


@pytest.mark.parametrize(("table", "file"), [("retrain_table", "retrain_file"), ("ensemble_table", "ensemble_file"),
                                             ("baseline_table", "baseline_file")])  # fmt: skip
def test_damaged_retrain_tables(run, table, file):
    """retrain.csv, ensemble.csv and baseline.csv are read by report and retrain after a search and a retrain; here
    through the one reader they share (no command reaches them without a real search)."""
    from tunelab.errors import UserError

    path = getattr(run, file)
    for content, message in ((b"", "cannot read it as CSV"), (b"x,y\n1,2\n", "it has no column")):
        path.write_bytes(content)
        with pytest.raises(UserError, match=f"{path.name}: damaged, {message}.*write it again with `tunelab retrain"):
            getattr(run, table)()


# Data files: the reader of each kind names the file; tunelab.data says how to get a good copy.

WEATHER = "crowdflower-weather-twitter"


def nan_soft_label(folder):
    write_weather(folder, name="train.csv")
    lines = (folder / "train.csv").read_text().split("\n")
    lines[3] = lines[3][: lines[3].rindex(",")] + ',""'  # k15 of the third tweet left empty
    (folder / "train.csv").write_text("\n".join(lines))
    return folder / "train.csv"


@pytest.mark.parametrize(("make", "message"), [
    (lambda f: (f.mkdir(parents=True), (f / "train.csv.zip").write_bytes(b"not a zip" * 9))[1] and f / "train.csv.zip",
     "cannot read it as CSV (File is not a zip file)"),
    (lambda f: write_weather(f, n=0) / "train.csv.gz", "no rows (an empty file, or a header alone)"),
    (lambda f: (truncate(write_weather(f) / "train.csv.gz"), f / "train.csv.gz")[1],
     "cannot read it as CSV (Compressed file ended before the end-of-stream marker was reached)"),
    (nan_soft_label, "row 3: soft label k15 is empty, not a share in [0, 1] (1 such in all)"),
])  # fmt: skip
def test_damaged_weather_tweets(env, capsys, make, message):
    path = make(env / "data" / WEATHER)
    argv = ["describe", "text_cnn", "--dataset", "weather_tweets", "--data-dir", str(env / "data")]
    line = one_line_error(capsys, argv, path)
    assert message in line and "delete it and get a good copy: `tunelab data fetch weather_tweets`" in line


def test_a_truncated_csv_gz_stops_a_search_before_ray_starts(env, capsys):
    truncate(write_weather(env / "data" / WEATHER) / "train.csv.gz")
    line = one_line_error(capsys, ["search", "weather_cnn", "--data-dir", str(env / "data")], "train.csv.gz")
    assert "Compressed file ended" in line


@pytest.mark.parametrize("keep", [0.5, 0.0])
def test_a_truncated_idx_file(env, capsys, keep):
    path = write_mnist_like(env / "data" / "fashion-mnist") / "train-labels-idx1-ubyte.gz"
    truncate(path, keep)
    line = one_line_error(capsys, ["describe", "cnn_classifier", "--data-dir", str(env / "data")], path)
    assert "delete it and get a good copy: `tunelab data fetch fashion_mnist`" in line


@pytest.mark.parametrize("damage", [truncate, lambda p: p.write_bytes(p.read_bytes()[:200] + bytes(300) +
                                                                      p.read_bytes()[500:])])  # fmt: skip
def test_a_damaged_npz(env, capsys, damage):
    path = write_pneumoniamnist(env / "data" / "pneumoniamnist") / "pneumoniamnist.npz"
    damage(path)
    argv = ["describe", "cnn_classifier", "--dataset", "pneumoniamnist", "--data-dir", str(env / "data")]
    line = one_line_error(capsys, argv, path)
    assert ": cannot read it (" in line and "`tunelab data fetch pneumoniamnist`" in line


# Folders tunelab cannot write. Tests run as root, for whom permissions deny nothing: a path under a regular file
# cannot be made by anyone; the chmod variant is skipped as root.


def test_a_results_root_under_a_file(env, capsys, fixture_root):
    (env / "file").write_text("")
    argv = ["search", str(SMALL_CNN), "--results-dir", str(env / "file" / "results"), "--data-dir", str(fixture_root)]
    line = one_line_error(capsys, argv, env / "file" / "results")
    assert "Not a directory" in line


def test_a_comparison_folder_that_cannot_be_made(run, capsys):
    shutil.copytree(run.dir, run.dir.parent / "other")
    (run.dir.parent / f"compare_{RUN}_vs_other").write_text("")  # a file where the folder belongs
    line = one_line_error(capsys, ["compare", RUN, "other"], f"compare_{RUN}_vs_other")
    assert "cannot make the results folder: File exists" in line


def test_a_cache_under_a_file(env, capsys, monkeypatch):
    """Kaggle's chest X-ray JPEGs are decoded once into the cache, before a search starts."""
    for split in ("train", "test"):
        for label in ("NORMAL", "PNEUMONIA"):
            (env / "data" / "chest_xray" / split / label).mkdir(parents=True)
            Image.fromarray(np.zeros((40, 40), np.uint8)).save(env / "data" / "chest_xray" / split / label / "a.jpeg")
    (env / "file").write_text("")
    monkeypatch.setenv("TUNELAB_CACHE", str(env / "file" / "cache"))
    argv = ["describe", "cnn_classifier", "--dataset", "chest_xray", "--data-dir", str(env / "data")]
    line = one_line_error(capsys, argv, env / "file" / "cache")
    assert "cannot make the cache folder (TUNELAB_CACHE): Not a directory" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", ["leaderboard", "retrain", "report"])
def test_a_read_only_run_folder(run, capsys, command):
    run.dir.chmod(0o555)
    try:
        one_line_error(capsys, [command, RUN], run.dir)
    finally:
        run.dir.chmod(0o755)
