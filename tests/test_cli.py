"""Bad input through the command line: a clear message, exit status 2, no traceback, nothing damaged."""

import re
import subprocess
import sys

import pytest
import torch
import yaml

from tests.helpers import REPO, write_mnist_like
from tunelab.cli import main, parser


def fails(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("tunelab: error: ") and "Traceback" not in err
    return err


def write_space(tmp_path, **changes):
    raw = yaml.safe_load((REPO / "search_spaces" / "fashion_cnn.yaml").read_text()) | changes
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_unknown_experiment(env, capsys):
    err = fails(capsys, "search", "fashion_cnm")
    assert "unknown experiment 'fashion_cnm'; known: " in err and " fashion_cnn," in err


def test_yaml_syntax_error(env, capsys):
    path = env / "broken.yaml"
    path.write_text("trainable: cnn_classifier\nparameters: {lr: [\n")
    assert f"{path}:3: YAML syntax error" in fails(capsys, "search", str(path))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": 1}, "exp.yaml: colour: unknown key; allowed:"),
        (
            {"parameters": {"lr": {"distribution": "gaussian", "min": 0, "max": 1}}},
            "parameters.lr: unknown distribution 'gaussian'",
        ),
        ({"parameters": {"lr": {"min": 0.3, "max": 0.1}}}, "parameters.lr: min (0.3) > max (0.1)"),
        (
            {"parameters": {"depth": {"values": ["deep"]}}},
            "parameters.depth: values ['deep'] have the wrong type; expected an integer",
        ),
        (
            {"parameters": {"n_heads": {"values": [2]}}},
            "parameters.n_heads: cnn_classifier has no hyperparameter 'n_heads'",
        ),
        (
            {"dataset": "sentiment140"},
            "exp.yaml: dataset: 'sentiment140' is a data set of texts, and the trainable trains on images (chest_xray",
        ),
        ({"run_cap": 0}, "exp.yaml: run_cap: must be an integer >= 1, not 0"),
        ({"max_epochs": float("inf")}, "exp.yaml: max_epochs: must be an integer >= 1, not inf"),
        ({"time_budget_s": -1}, "exp.yaml: time_budget_s: must be a number >= 1, not -1"),
        ({"resources": {"cpu": 0, "gpu": 0}}, "exp.yaml: resources.cpu: must be a number > 0, not 0"),
        (
            {"resources": {"cpu": 1, "gpu": 1.5}},
            "exp.yaml: resources.gpu: must be 0, a fraction of one GPU (0.25, 0.5) or a whole number of GPUs, not 1.5",
        ),
    ],
)
def test_malformed_search_space(env, capsys, change, message):
    assert message in fails(capsys, "search", write_space(env, **change))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "fashion_cnn", "--trials", "-3"], "argument --trials: must be an integer >= 1, not -3"),
        (["search", "fashion_cnn", "--trials", "0"], "argument --trials: must be an integer >= 1, not 0"),
        (["search", "fashion_cnn", "--trials", "2.5"], "argument --trials: must be an integer, not '2.5'"),
        (["search", "fashion_cnn", "--concurrency", "0"], "argument --concurrency: must be an integer >= 1, not 0"),
        (
            ["search", "fashion_cnn", "--time-budget", "-1"],
            "argument --time-budget: must be a duration: seconds (90) or a number with s, m or h (90s, 20m, 1.5h), "
            "not '-1'",
        ),
        (["search", "fashion_cnn", "--time-budget", "0m"], "argument --time-budget: must be a duration > 0: seconds"),
        (["search", "fashion_cnn", "--max-epochs", "0"], "argument --max-epochs: must be an integer >= 1, not 0"),
        (["search", "fashion_cnn", "--cpus-per-trial", "0"], "argument --cpus-per-trial: must be a number > 0, not 0"),
        (
            ["search", "fashion_cnn", "--cpus-per-trial", "-2"],
            "argument --cpus-per-trial: must be a number > 0, not -2",
        ),
        (
            ["search", "fashion_cnn", "--gpus-per-trial", "-1"],
            "argument --gpus-per-trial: must be a number >= 0, not -1",
        ),
        (
            ["search", "fashion_cnn", "--gpus-per-trial", "1.5"],
            "argument --gpus-per-trial: must be 0, a fraction of one GPU",
        ),
        (["search", "fashion_cnn", "--seed", "-1"], "argument --seed: must be an integer >= 0, not -1"),
        (["retrain", "fashion_cnn", "--top-k", "0"], "argument --top-k: must be an integer >= 1, not 0"),
        (["retrain", "fashion_cnn", "--seeds", "0"], "argument --seeds: must be an integer >= 1, not 0"),
        (["retrain", "fashion_cnn", "--epochs", "0"], "argument --epochs: must be an integer >= 1, not 0"),
        (["leaderboard", "fashion_cnn", "--top", "0"], "argument --top: must be an integer >= 1, not 0"),
        (["search", "fashion_cnn", "--name", "a/b"], "argument --name: must be a folder name of letters, digits"),
        (["search", "fashion_cnn", "--name", ""], "argument --name: must be a folder name of letters, digits"),
    ],
)
def test_bad_numbers_and_names_on_the_command_line(env, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize("gpus", ["0", "0.25", "0.5", "1", "2"])
def test_gpus_per_trial_none_a_fraction_or_whole(gpus):
    assert parser().parse_args(["search", "fashion_cnn", "--gpus-per-trial", gpus]).gpus_per_trial == float(gpus)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_trial_on_a_machine_without_one_is_refused_before_anything_starts(env, capsys, fixture_root):
    err = fails(capsys, "--data-dir", str(fixture_root), "search", "fashion_cnn", "--gpus-per-trial", "1",
                "--wandb", "disabled")  # fmt: skip
    assert ("a trial asks for 1 GPU (--gpus-per-trial), but this machine has no GPU: "
            "search on the CPU with --gpus-per-trial 0") in err  # fmt: skip
    assert not (env / "results" / "fashion_cnn").exists()


@pytest.mark.slow
def test_more_cpus_per_trial_than_the_machine_has_names_how_many_it_has(env, capsys, fixture_root):
    err = fails(capsys, "--data-dir", str(fixture_root), "search", "fashion_cnn", "--cpus-per-trial", "1000",
                "--wandb", "disabled")  # fmt: skip
    expected = r"a trial asks for 1000 CPUs \(--cpus-per-trial\), but this machine has \d+ CPUs?$"
    assert re.search(expected, err.strip()), err
    assert not (env / "results" / "fashion_cnn").exists()


@pytest.mark.parametrize("address", ["nonsense", "ray://head", "head:port"])
def test_an_address_that_is_not_one_says_what_an_address_is(env, capsys, fixture_root, monkeypatch, address):
    argv = ["--data-dir", str(fixture_root), "search", "fashion_cnn"]
    err = fails(capsys, *argv, "--address", address)
    assert f"--address {address!r} is not a Ray cluster's address: HOST:PORT of its head node" in err
    monkeypatch.setenv("RAY_ADDRESS", address)
    assert f"RAY_ADDRESS {address!r} is not a Ray cluster's address" in fails(capsys, *argv)
    assert not (env / "results" / "fashion_cnn").exists()


def test_a_storage_that_cannot_keep_the_trials_is_named(env, capsys, fixture_root):
    err = fails(capsys, "--data-dir", str(fixture_root), "search", "fashion_cnn", "--storage", "nosuch://bucket")
    assert "cannot use 'nosuch://bucket/fashion_cnn' (--storage) to keep the trials: Unrecognized filesystem" in err


def test_resume_from_a_storage_without_the_search_keeps_the_run_as_it_was(env, capsys, fixture_root):
    from tunelab.spec import spaces
    from tunelab.store import runs

    run = runs.StoredRun(env / "results" / "mine", spaces.load_spec("fashion_cnn"), runs.Options(), fixture_root)
    run.save()
    saved = (run.dir / runs.INFO_FILE).read_text()
    err = fails(capsys, "resume", "mine", "--storage", "nosuch://bucket")
    assert "cannot use 'nosuch://bucket/mine' (--storage) to keep the trials: Unrecognized filesystem" in err
    err = fails(capsys, "resume", "mine", "--storage", str(env / "empty"))
    assert f"{env / 'empty' / 'mine'} holds no search to continue" in err and "give --storage where" in err
    assert (run.dir / runs.INFO_FILE).read_text() == saved


def test_missing_data_set_writes_nothing(env, capsys):
    err = fails(capsys, "--data-dir", str(env / "nodata"), "search", "fashion_cnn")
    assert "data set 'fashion_mnist' not found" in err and "tunelab data fetch fashion_mnist" in err
    assert not (env / "results" / "fashion_cnn").exists()


def test_corrupt_data_file(env, capsys):
    folder = write_mnist_like(env / "data" / "fashion-mnist", n_train=50, n_test=10)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    err = fails(capsys, "--data-dir", str(env / "data"), "search", "fashion_cnn")
    assert "train-images-idx3-ubyte.gz: cannot read" in err


def test_unwritable_results_directory(env, capsys, fixture_root):
    blocker = env / "a-file"
    blocker.write_text("")
    err = fails(capsys, "--data-dir", str(fixture_root), "--results-dir", str(blocker / "results"),
                "search", "fashion_cnn")  # fmt: skip
    assert f"cannot write the results folder {blocker / 'results' / 'fashion_cnn'}" in err


def test_commands_on_a_run_that_does_not_exist(env, capsys):
    for command in ("leaderboard", "retrain", "report", "resume"):
        err = fails(capsys, command, "nothing")
        assert "no search run 'nothing'" in err and "`tunelab search EXPERIMENT --name nothing`" in err
    assert "Start one with `tunelab search fashion_cnn`" in fails(capsys, "retrain", "fashion_cnn")  # an experiment


def test_wandb_online_without_a_key_is_refused_not_prompted(env, capsys, fixture_root):
    err = fails(capsys, "--data-dir", str(fixture_root), "search", "fashion_cnn", "--wandb", "online")
    assert "--wandb online needs an API key" in err
    assert not (env / "results" / "fashion_cnn").exists()


def test_exit_status_and_no_traceback_from_the_installed_command(env):
    cli = [sys.executable, "-m", "tunelab.cli"]
    done = subprocess.run([*cli, "search", "nope"], capture_output=True, text=True, cwd=env)
    assert done.returncode == 2 and "unknown experiment 'nope'" in done.stderr and "Traceback" not in done.stderr
    debug = subprocess.run([*cli, "--debug", "search", "nope"], capture_output=True, text=True, cwd=env)
    assert "Traceback" in debug.stderr
