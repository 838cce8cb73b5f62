"""`tunelab retrain --ensemble` and the text models' classical baseline, through the command line on tiny real
searches (real Ray, Optuna): the ensemble's metrics are those of the saved models' mean probabilities."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from tests.helpers import write_text_data
from trainables import common, text
from tunelab.cli import main
from tunelab.spec import spaces
from tunelab.store import retrained, runs
from tunelab.trainable import training


def by_hand(run: runs.StoredRun, models: list[str], predict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each test split's mean of the saved models' predicted probabilities, and its labels."""
    data = run.retrained_data(training.device())
    members = [training.rebuild(run.retrained(*(int(n) for n in name[4:].split("_seed"))), data) for name in models]
    tests = [split for split in data.splits if split.startswith("test")]
    return {split: (np.mean([predict(parts, data, split) for parts in members], 0), data.splits[split][1].cpu().numpy())
            for split in tests}  # fmt: skip


def nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(p[np.arange(len(y)), y]).mean())


def test_retrain_refuses_an_ensemble_of_a_non_classifier_before_training(env, fixture_root, capsys):
    run = runs.StoredRun(
        env / "results" / "mnist_conv_ae", spaces.load_spec("mnist_conv_ae"), runs.Options(), fixture_root
    )
    run.save()
    assert main(["retrain", "mnist_conv_ae", "--top-k", "2", "--seeds", "2", "--ensemble"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "trainable conv_autoencoder (run 'mnist_conv_ae')" in err
    assert "it works for cnn_classifier, examples_net, text_cnn, text_rnn, transfer" in err
    assert not (run.dir / "retrain").exists()  # nothing trained


@pytest.mark.slow
def test_text_ensemble_covers_every_test_split_and_the_baseline_sits_beside_it(env, tmp_path_factory, capsys):
    root = ["--data-dir", str(write_text_data(tmp_path_factory.mktemp("text")))]
    assert main([*root, "search", "sentiment140_cnn", "--trials", "2", "--max-epochs", "2", "--wandb", "disabled"]) == 0
    capsys.readouterr()
    argv = [*root, "retrain", "sentiment140_cnn", "--top-k", "2", "--seeds", "2", "--epochs", "3", "--ensemble"]
    assert main([*argv, "--wandb", "disabled"]) == 0
    out = capsys.readouterr().out
    assert "| ensemble" in out and "Ensemble (the mean probabilities of 4 models" in out
    assert "What a student would try first" in out and "TF-IDF (word 1-2-grams) + logistic regression" in out

    run = runs.open_run("sentiment140_cnn", env / "results")
    folder = run.retrain_dir
    models = pd.read_csv(folder / "retrain.csv")
    ensemble = pd.read_csv(folder / "ensemble.csv").iloc[0]
    assert ensemble["members"] == 4 and ensemble["models"] == "rank1_seed0 rank1_seed1 rank2_seed0 rank2_seed1"
    tests = {c for c in models if c.startswith("test")}
    assert {c for c in ensemble.index if c.startswith("test")} == tests
    assert {"test_acc", "test_auc", "test_loss", "test_manual_acc", "test_manual_auc", "test_manual_loss"} <= tests
    for split, (p, y) in by_hand(run, ensemble["models"].split(), lambda *a: text.predict_proba(*a)[0]).items():
        assert ensemble[f"{split}_acc"] == pytest.approx((p.argmax(1) == y).mean())
        assert ensemble[f"{split}_auc"] == pytest.approx(roc_auc_score(y, p[:, 1]))
        assert ensemble[f"{split}_loss"] == pytest.approx(nll(p, y), rel=1e-4)

    baseline = pd.read_csv(folder / "baseline.csv").iloc[0]
    assert {c for c in baseline.index if c.startswith("test")} == tests  # class labels: every metric of the models
    assert baseline["test_acc"] > 0.8 and baseline["test_manual_acc"] > 0.8  # chance: 0.5; the words say the sentiment

    assert main([*root, "report", "sentiment140_cnn", "--wandb", "disabled"]) == 0
    for name in ("report.md", "report.html"):
        report = (run.dir / "report" / name).read_text()
        assert "What a student would try first" in report and "TF-IDF (word 1-2-grams)" in report
        assert "ensemble of all 4 retrained models" in report and "rank1_seed0 rank1_seed1 rank2_seed0" in report
        assert f"{ensemble['test_manual_acc']:.4f}" in report


@pytest.mark.slow
def test_image_classifier_ensemble_is_the_mean_of_its_models_probabilities(env, fixture_root, capsys):
    root = ["--data-dir", str(fixture_root)]
    assert main([*root, "search", "fashion_cnn", "--trials", "1", "--max-epochs", "1", "--wandb", "disabled"]) == 0
    assert main([*root, "retrain", "fashion_cnn", "--seeds", "1", "--ensemble"]) == 2
    assert "--ensemble needs at least 2 models, not 1 config(s) x 1 seed(s)" in capsys.readouterr().err
    argv = [*root, "retrain", "fashion_cnn", "--seeds", "2", "--epochs", "1", "--ensemble", "--wandb", "disabled"]
    assert main(argv) == 0
    run = runs.open_run("fashion_cnn", env / "results")
    ensemble = pd.read_csv(run.ensemble_file).iloc[0]
    assert ensemble["members"] == 2 and not run.baseline_file.exists()

    def predict(parts, data, split):
        return common.predict(parts["model"], data.splits[split][0]).softmax(1).numpy()

    ((p, y),) = by_hand(run, ensemble["models"].split(), predict).values()
    assert ensemble["test_acc"] == pytest.approx((p.argmax(1) == y).mean())
    assert ensemble["test_loss"] == pytest.approx(nll(p, y), rel=1e-4)
    assert retrained.table(run)["rank"].tolist() == [1, "ensemble"]
