"""A student's own trainable, in a folder outside the repository, through the command line: search -> retrain ->
report -> compare, run from another folder, with the results in the working directory's ./results."""

import re

import pandas as pd
import pytest
import torch
import yaml

from tests.helpers import write_student_model
from tunelab.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def student(env, tmp_path, monkeypatch):
    """The student's folder (two sweeps of one model) and a working directory beside it, with no results root set."""
    sweeps = {
        "sweep": {"hidden": {"values": [16, 32]}},
        "wide": {"hidden": {"value": 64}, "lr": {"values": [0.005, 0.02]}},
    }
    folder = write_student_model(tmp_path / "hw3", sweeps)
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("TUNELAB_RESULTS")
    return folder


def test_search_retrain_report_compare_of_a_users_model(student, fixture_root, capsys):
    data = ["--data-dir", str(fixture_root)]
    for sweep in ("sweep", "wide"):
        assert main([*data, "search", str(student / f"{sweep}.yaml"), "--wandb", "disabled"]) == 0
        assert main([*data, "retrain", sweep, "--seeds", "1", "--wandb", "disabled"]) == 0
    run = student.parent / "elsewhere" / "results" / "sweep"  # named after the file, in ./results
    board = pd.read_csv(run / "leaderboard.csv")
    assert len(board) == 2 and (board["status"] == "completed").all() and set(board["config/hidden"]) == {16, 32}
    assert board["val_acc"].iloc[0] > 0.3  # the fixture's classes are bright squares: well above chance (0.1)
    stored = yaml.safe_load((run / "tunelab.yaml").read_text())["spec"]
    assert stored["trainable"] == str(student / "mlp.py")  # the run remembers where its model came from
    checkpoint = torch.load(run / "retrain" / "rank1_seed0.pt", weights_only=True)
    assert checkpoint["trainable"] == str(student / "mlp.py") and checkpoint["config"]["hidden"] in (16, 32)

    assert main([*data, "report", "sweep", "--wandb", "disabled"]) == 0
    report = (run / "report" / "report.md").read_text()
    assert f"trainable `mlp` ({student / 'mlp.py'})" in report
    assert "The first hidden unit's weights" in report and (run / "report" / "first_hidden_unit.png").is_file()
    hidden = checkpoint["config"]["hidden"]
    assert re.search(rf"\| 1 +\| Linear +\| \[1, {hidden}\]", report)  # the student's network's layer table
    capsys.readouterr()

    assert main([*data, "compare", "sweep", "wide"]) == 0
    out = capsys.readouterr().out
    figure = student.parent / "elsewhere" / "results" / "compare_sweep_vs_wide" / "compare_roc.png"
    assert figure.is_file() and "compare_sweep_vs_wide/compare_roc.png" in out

    assert main([*data, "describe", str(student / "mlp.py")]) == 0
    assert "Linear" in capsys.readouterr().out


def test_a_broken_model_is_refused_before_the_search_starts(student, fixture_root, capsys):
    source = (student / "mlp.py").read_text()
    (student / "mlp.py").write_text(source.replace("def predict_proba(", "def predict_probs("))
    assert main(["--data-dir", str(fixture_root), "search", str(student / "sweep.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"trainable 'mlp' ({student / 'mlp.py'}) does not follow the protocol" in err
    assert "'predict_probs' is not part of the protocol: did you mean predict_proba?" in err
    assert not (student.parent / "elsewhere" / "results").exists()  # nothing started
