"""The results layout: a run reopens from what it stored when it started, whatever the code's defaults are now."""

from dataclasses import replace

import pytest
import torch
import yaml

from tunelab.errors import UserError
from tunelab.spec import spaces
from tunelab.spec.rules import end_status
from tunelab.store import runs


def saved_run(tmp_path, monkeypatch) -> runs.StoredRun:
    spec = runs.Options(trials=2, max_epochs=3).apply(spaces.load_spec("fashion_cnn"))
    run = runs.StoredRun(tmp_path / "fashion_cnn", spec, runs.Options(trials=2, max_epochs=3), tmp_path / "data")
    run.save()
    return run


def test_a_run_reopens_with_the_spec_and_defaults_it_started_with(tmp_path, monkeypatch):
    run = saved_run(tmp_path, monkeypatch)
    from trainables import cnn_classifier

    renamed = {("learning_rate" if k == "lr" else k): v for k, v in cnn_classifier.DEFAULTS.items()}
    monkeypatch.setattr(cnn_classifier, "DEFAULTS", renamed)  # a hyperparameter renamed since the search
    reopened = runs.open_run("fashion_cnn", tmp_path)
    assert reopened.spec == run.spec  # distributions, constants, defaults, options applied: all as stored
    assert reopened.spec.config({})["lr"] == run.spec.config({})["lr"]
    assert "learning_rate" not in reopened.spec.config({})
    assert reopened.spec.run_cap == 2 and reopened.spec.config({})["epochs"] == 3


def test_a_run_of_an_older_layout_is_a_clear_error(tmp_path):
    (tmp_path / "old").mkdir()
    old = {"experiment": "fashion_gan", "spec": {"trainable": "gan"}, "options": {}}
    (tmp_path / "old" / runs.INFO_FILE).write_text(yaml.safe_dump(old))
    with pytest.raises(UserError, match=r"written by an older tunelab.*`tunelab search fashion_gan --name old-new`"):
        runs.open_run("old", tmp_path)


def test_a_retrained_model_is_one_self_describing_file(tmp_path, monkeypatch):
    run = saved_run(tmp_path, monkeypatch)
    run.retrain_dir.mkdir()
    config = run.spec.config({"lr": 0.01})
    run.save_retrained(1, 0, "abc", config, 0.5, {"w": torch.ones(2)})
    saved = torch.load(run.checkpoint_file(1, 0), weights_only=True)
    assert saved["config"] == config and saved["subset"] == 0.5 and saved["trial_id"] == "abc"
    assert (saved["trainable"], saved["dataset"]) == ("cnn_classifier", "fashion_mnist")
    assert torch.equal(saved["model"]["w"], torch.ones(2)) and run.has_retrained()
    with pytest.raises(UserError, match="no retrained model rank2_seed0.pt yet; run `tunelab retrain fashion_cnn`"):
        run.retrained(2, 0)


def test_a_trial_ended_short_is_stopped_early_at_an_asha_rung_and_else_cut_by_the_time_budget():
    spec = replace(spaces.load_spec("fashion_cnn"), max_epochs=12, time_budget_s=60.0)  # ASHA's rungs: epochs 2, 4, 8
    assert [end_status(spec, e) for e in (12, 2, 4, 8)] == ["completed"] + ["stopped early"] * 3
    for epochs in (0, 1, 3, 5, 11):  # ASHA decides only at its rungs, so the budget ended these
        assert end_status(spec, epochs) == "cut by the time budget"
    assert end_status(replace(spec, time_budget_s=None), 3) == "stopped early"  # no budget to blame
    no_asha = replace(spec, hyperband=None)
    assert end_status(no_asha, 2) == "cut by the time budget"
    assert end_status(no_asha, 12) == "completed"
