"""The MNIST autoencoder experiments end to end on a tiny MNIST in its own IDX format, with real Ray and
Optuna: a multi-objective search whose leaderboard marks the Pareto front, and the conv autoencoder's report
that sets the MLP autoencoder's reconstructions beside its own."""

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import report_figures
from tunelab.cli import main

pytestmark = pytest.mark.slow


def tunelab(root, *argv) -> None:
    assert main(["--data-dir", str(root), *argv]) == 0


def dominated(points: np.ndarray) -> np.ndarray:
    """Brute force: whether another row is at least as good everywhere and better somewhere (larger is better)."""
    return np.array([any((q >= p).all() and (q > p).any() for q in points) for p in points])


def test_thought_vector_search_marks_the_pareto_front_and_reports_it(env, fixture_root, capsys):
    tunelab(fixture_root, "search", "mnist_thought_ae", "--trials", "3", "--max-epochs", "3", "--concurrency", "2",
            "--wandb", "disabled")  # fmt: skip
    run = env / "results" / "mnist_thought_ae"
    board = pd.read_csv(run / "leaderboard.csv")
    assert len(board) == 3 and set(board["status"]) <= {"completed", "stopped early"}
    assert board["val_pixel_acc"].between(0, 1).all()
    assert (board["params"] > 0).all() and (board["duration_s"] > 0).all()
    points = board[["val_pixel_acc", "params", "duration_s"]].to_numpy() * [1, -1, -1]
    assert board["pareto"].tolist() == (~dominated(points)).tolist()
    assert board["pareto"].iloc[0]  # the trial to hand in is on the front
    best = yaml.safe_load((run / "best.yaml").read_text())
    assert best["trial_id"] == board["trial_id"].iloc[0]
    assert best["objectives"]["params"] == board["params"].iloc[0] and best["config"]["code"] == 256
    assert "Pareto-optimal trials (`pareto`) first" in capsys.readouterr().out

    tunelab(fixture_root, "retrain", "mnist_thought_ae", "--seeds", "1", "--epochs", "1", "--wandb", "disabled")
    retrained = pd.read_csv(run / "retrain" / "retrain.csv")
    assert retrained["test_pixel_acc"].between(0, 1).all() and (retrained["params"] == board["params"].iloc[0]).all()
    tunelab(fixture_root, "report", "mnist_thought_ae", "--wandb", "disabled")
    report = run / "report" / "report.md"
    figures = set(report_figures(report.read_text()))
    assert {"pareto_front.png", "thought_vectors_tsne.png", "reconstructions.png"} <= figures
    assert f"To hand in: trial {board['trial_id'].iloc[0]} with val_pixel_acc = " in report.read_text()


def test_conv_autoencoder_report_sets_the_mlp_reconstructions_beside_its_own(env, fixture_root):
    for experiment in ("mnist_conv_ae", "mnist_mlp_ae"):
        tunelab(fixture_root, "search", experiment, "--trials", "1", "--max-epochs", "1", "--wandb", "disabled")
    tunelab(fixture_root, "retrain", "mnist_conv_ae", "--seeds", "1", "--wandb", "disabled")
    tunelab(fixture_root, "report", "mnist_conv_ae", "--wandb", "disabled")
    report = env / "results" / "mnist_conv_ae" / "report" / "report.md"
    assert "`mnist_mlp_ae` (not retrained yet: `tunelab retrain mnist_mlp_ae`)" in report.read_text()
    assert "compare_reconstructions.png" not in report_figures(report.read_text())

    tunelab(fixture_root, "retrain", "mnist_mlp_ae", "--seeds", "1", "--wandb", "disabled")
    tunelab(fixture_root, "report", "mnist_conv_ae", "--wandb", "disabled")
    assert "The same test images reconstructed by mnist_conv_ae, mnist_mlp_ae" in report.read_text()
    assert (report.parent / "compare_reconstructions.png").stat().st_size > 5000
