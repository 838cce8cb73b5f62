"""The fashion_ablation experiment: its search file, and search -> retrain -> report end to end on the
generated fixture (real Ray, real Optuna, W&B offline)."""

import pandas as pd
import pytest
import yaml

from tests.helpers import REPO, report_figures
from tunelab.cli import main
from tunelab.errors import UserError
from tunelab.spec import spaces


def ablation_space(**changes) -> dict:
    return yaml.safe_load((REPO / "search_spaces" / "fashion_ablation.yaml").read_text()) | changes


def test_the_variant_is_a_grid_dimension_compared_in_the_report():
    spec = spaces.load_spec("fashion_ablation")
    assert spec.method == "grid" and spec.ablation == "variant" and spec.max_epochs == 10
    assert list(spec.params["variant"].choices) == ["baseline", "augment", "batch_norm", "finetune"]
    assert spec.run_cap == 4 * len(spec.params["lr"].choices)


@pytest.mark.parametrize("ablation", ["lr_decay", "colour", ["variant"]])
def test_ablation_must_be_a_searched_list_of_values(tmp_path, ablation):
    parameters = {"variant": {"values": ["baseline"]}, "lr_decay": {"value": 0.7}}
    raw = ablation_space(ablation=ablation, parameters=parameters)
    message = "ablation: .* is not a hyperparameter searched over a list of values; searched that way: variant"
    with pytest.raises(UserError, match=message):
        spaces.parse(raw, tmp_path / "exp.yaml")


@pytest.mark.slow
def test_ablation_search_retrain_report(env, fixture_root, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "local")  # a fresh local Ray even where `ray start` left a cluster running
    space = env / "ablation.yaml"  # one learning rate, a short pretraining: four trials
    parameters = ablation_space()["parameters"] | {"lr": {"values": [1.0]}, "pretrain_epochs": {"value": 2}}
    space.write_text(yaml.safe_dump(ablation_space(parameters=parameters)))
    data = ["--data-dir", str(fixture_root)]
    assert main([*data, "search", str(space), "--name", "ablation", "--max-epochs", "2", "--wandb", "disabled"]) == 0
    run = env / "results" / "ablation"
    board = pd.read_csv(run / "leaderboard.csv").set_index("config/variant")
    assert sorted(board.index) == ["augment", "baseline", "batch_norm", "finetune"]
    assert (board["status"] == "completed").all() and (board["epochs"] == 2).all()
    assert board.loc["baseline", "params"] == 1_199_882
    # the fixture's classes sit where MNIST's do: the MNIST-trained network classifies it before fine-tuning
    first = pd.read_csv(next(run.glob(f"trial_{board.loc['finetune', 'trial_id']}/progress.csv")))
    assert first["val_acc"].iloc[0] > 0.9

    assert main([*data, "retrain", "ablation", "--seeds", "1", "--epochs", "1", "--wandb", "disabled"]) == 0
    assert main([*data, "report", "ablation", "--wandb", "disabled"]) == 0
    report = (run / "report" / "report.md").read_text()
    figures = set(report_figures(report))
    wanted = {"ablation_train.png", "ablation_val.png", "augmentations.png", "tsne.png", "activation_maximisation.png"}
    assert wanted <= figures
    comparison = report.split("## Ablation of variant")[1].split("![")[0]
    for variant in ("baseline", "augment", "batch_norm", "finetune"):
        assert f"| {variant} " in comparison
    assert "| total" in report and "test accuracy" in report
