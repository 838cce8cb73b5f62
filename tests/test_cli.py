"""Bad input through the command line: a clear message, exit status 2, no traceback, nothing damaged."""

import subprocess
import sys

import pytest
import yaml

from tunelab.cli import main
from tests.conftest import REPO, write_mnist_like


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
        ({"parameters": {"lr": {"distribution": "gaussian", "min": 0, "max": 1}}}, "parameters.lr: unknown distribution 'gaussian'"),
        ({"parameters": {"lr": {"min": 0.3, "max": 0.1}}}, "parameters.lr: min (0.3) > max (0.1)"),
        ({"parameters": {"depth": {"values": ["deep"]}}}, "parameters.depth: values ['deep'] have the wrong type; expected an integer"),
        ({"parameters": {"n_heads": {"values": [2]}}}, "parameters.n_heads: cnn_classifier has no hyperparameter 'n_heads'"),
    ],
)
def test_malformed_search_space(env, capsys, change, message):
    assert message in fails(capsys, "search", write_space(env, **change))


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
    err = fails(capsys, "--data-dir", str(fixture_root), "--results-dir", str(blocker / "results"), "search", "fashion_cnn")
    assert f"cannot write the results folder {blocker / 'results' / 'fashion_cnn'}" in err


def test_commands_on_a_run_that_does_not_exist(env, capsys):
    for command in ("leaderboard", "retrain", "report", "resume"):
        assert "no search run 'nothing'" in fails(capsys, command, "nothing")


def test_wandb_online_without_a_key_is_refused_not_prompted(env, capsys, fixture_root):
    err = fails(capsys, "--data-dir", str(fixture_root), "search", "fashion_cnn", "--wandb", "online")
    assert "--wandb online needs an API key" in err
    assert not (env / "results" / "fashion_cnn").exists()


def test_exit_status_and_no_traceback_from_the_installed_command(env):
    done = subprocess.run([sys.executable, "-m", "tunelab.cli", "search", "nope"], capture_output=True, text=True, cwd=env)
    assert done.returncode == 2 and "unknown experiment 'nope'" in done.stderr and "Traceback" not in done.stderr
    debug = subprocess.run([sys.executable, "-m", "tunelab.cli", "--debug", "search", "nope"], capture_output=True, text=True, cwd=env)
    assert "Traceback" in debug.stderr
