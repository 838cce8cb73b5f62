"""search -> retrain -> report from the command line for the generative experiments, with real Ray (local)
and real Optuna: the per-epoch Fréchet distance reaches the leaderboard, the test distances sit beside
their shuffled-real reference, and the reports hold the figures the assignment asks for."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import report_figures, subset_for
from tunelab.cli import main
from tunelab.store import leaderboard, runs

pytestmark = pytest.mark.slow


def search_retrain_report(experiment: str, root: Path, capsys) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The run's per-epoch search metrics (all trials), its retrain table and its report."""
    roots = ["--data-dir", str(root)]
    # each search in its own process, as from a shell: a third Ray start in one process times out
    argv = [sys.executable, "-m", "tunelab", *roots, "search", experiment, "--trials", "1", "--max-epochs", "1",
            "--subset", subset_for(root), "--wandb", "disabled"]  # fmt: skip
    search = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert search.returncode == 0, search.stdout + search.stderr
    assert main(roots + ["retrain", experiment, "--seeds", "1", "--epochs", "1", "--wandb", "disabled"]) == 0
    assert main(roots + ["report", experiment, "--wandb", "disabled"]) == 0
    run = Path(capsys.readouterr().out.rsplit("Report: ", 1)[1].strip()).parents[1]
    report = (run / "report" / "report.md").read_text()
    for name in report_figures(report):
        assert (run / "report" / name).stat().st_size > 5000, name
    epochs = pd.concat(leaderboard.histories(runs.open_run(run.name, run.parent)).values())
    return epochs, pd.read_csv(run / "retrain" / "retrain.csv"), report


def test_gan_then_cgan_beside_it(env, fashion_root, capsys):
    epochs, retrained, report = search_retrain_report("fashion_gan", fashion_root, capsys)
    assert epochs["val_frechet"].gt(0).all() and epochs["val_frechet_real"].gt(0).all()
    assert retrained["test_frechet"].gt(retrained["test_frechet_real"]).all()  # one epoch: far from real images
    assert "samples.png" in report and "learning_curves.png" in report and "| total" in report

    epochs, retrained, report = search_retrain_report("fashion_cgan", fashion_root, capsys)
    assert epochs["val_class_acc"].between(0, 1).all()
    assert retrained["test_class_acc_real"].gt(0.5).all()  # the classifier itself knows the classes
    assert "class_samples.png" in report and "compare_samples.png" in report  # compare_with: [fashion_gan]
    assert "samples of each of fashion_cgan, fashion_gan" in report


def test_vae(env, fashion_root, capsys):
    epochs, retrained, report = search_retrain_report("mnist_vae", fashion_root, capsys)
    assert epochs["val_nelbo"].gt(0).all()
    row = retrained.iloc[0]
    assert row["test_nelbo"] == pytest.approx(row["test_recon"] + row["test_kl"], rel=1e-4)
    assert row["test_frechet"] > 0 and row["test_frechet_real"] > 0
    for figure in ("prior_samples.png", "reconstructions.png", "latent_map.png"):
        assert figure in report
