"""Transfer learning end to end through the command line: real Ray (local), real Optuna, W&B offline."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import report_figures, variant, write_pneumoniamnist
from tunelab.cli import main
from tunelab.data import locate

pytestmark = pytest.mark.slow


def test_chest_xray_search_retrain_report(env):
    real = os.environ.get("TUNELAB_DATA")
    if real and locate("pneumoniamnist", Path(real)):
        root = Path(real)
    else:
        root = write_pneumoniamnist(env / "data" / "pneumoniamnist", n=200).parent
    space = variant(env, "chest_xray_transfer", baseline=None, early_terminate=None, parameters={
        "freeze": {"value": "linear_probe"}, "class_weight": {"values": [0.0, 1.0]}, "input_size": {"value": 32},
        "lr": {"value": 0.003}, "batch_size": {"value": 64}})  # fmt: skip
    common = ["--data-dir", str(root)]
    search = ["search", space, "--trials", "2", "--max-epochs", "2", "--subset", "0.25", "--wandb", "offline"]
    assert main([*common, *search]) == 0
    run = env / "results" / "chest_xray_transfer"
    board = pd.read_csv(run / "leaderboard.csv")
    assert len(board) == 2 and (board["status"] == "completed").all()
    assert board["val_balanced_acc"].is_monotonic_decreasing and board["val_balanced_acc"].between(0, 1).all()
    for progress in run.glob("*/progress.csv"):  # every epoch reports all the binary metrics
        assert {"val_acc", "val_sensitivity", "val_specificity", "val_auc"} <= set(pd.read_csv(progress).columns)
    assert sorted(board["config/class_weight"]) == [0.0, 1.0]

    assert main([*common, "retrain", "chest_xray_transfer", "--seeds", "1"]) == 0
    retrained = pd.read_csv(run / "retrain" / "retrain.csv")
    for metric in ("test_acc", "test_sensitivity", "test_specificity", "test_balanced_acc", "test_auc"):
        assert retrained[metric].between(0, 1).all(), metric
    if root != env / "data":  # the real PneumoniaMNIST: well above chance after two epochs of a linear probe
        assert retrained["test_auc"].iloc[0] > 0.8

    assert main([*common, "report", "chest_xray_transfer"]) == 0
    figures = report_figures((run / "report" / "report.md").read_text())
    expected = {"roc_curve.png", "confusion_matrix.png", "class_balance.png", "tsne.png", "activation_maximisation.png"}
    assert expected <= set(figures)
    assert all((run / "report" / f).stat().st_size > 5000 for f in figures)


def test_fashion_transfer_from_tunelabs_mnist_cnn(env, fixture_root, cache_root):
    space = variant(env, "fashion_transfer", baseline=None, parameters={"backbone": {"value": "mnist_cnn"},
                    "freeze": {"values": ["linear_probe", "finetune_last_block"]}, "lr": {"value": 0.003}})  # fmt: skip
    argv = ["--data-dir", str(fixture_root), "search", space, "--max-epochs", "1", "--wandb", "disabled"]
    # its own process: Ray 2.60 cannot start a second local cluster in a process that ran one
    done = subprocess.run([sys.executable, "-m", "tunelab", *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list(cache_root.glob("mnist_cnn-*.pt"))) == 1  # trained once, before the trials, on MNIST
    board = pd.read_csv(env / "results" / "fashion_transfer" / "leaderboard.csv")
    assert sorted(board["config/freeze"]) == ["finetune_last_block", "linear_probe"]
    assert (board["status"] == "completed").all()
    assert (board["val_acc"] > 0.3).all()  # generated classes are easy even from MNIST features
