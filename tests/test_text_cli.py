"""`tunelab describe` and, end to end with real Ray, Optuna and W&B offline, the text experiments:
search -> retrain -> report -> `tunelab compare`."""

import re

import pandas as pd
import pytest
import yaml

from trainables import text_cnn
from tunelab import data as datasets
from tunelab.cli import main
from tunelab.engine import retrain


def test_describe_shows_every_shape_and_the_parameters(env, text_root, capsys):
    config = env / "char.yaml"
    char = {"level": "char", "depth": 2, "kernel_sizes": "5", "filters": 16, "embedding_dim": 8}
    config.write_text(yaml.safe_dump({"config": char}))
    assert main(["--data-dir", str(text_root), "describe", "text_cnn", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "text_cnn on sentiment140" in out and "Total params" in out
    assert re.search(r"Conv1d.*\[2, 8, \d+\]\s+\[2, 16, \d+\]\s+656", out)  # 8 x 16 x 5 weights + 16 biases
    assert re.search(r"MaxPool1d.*\[2, 16, (\d+)\]\s+\[2, 16, \d+\]", out)
    assert main(["--data-dir", str(text_root), "describe", "text_rnn", "--dataset", "imdb"]) == 0
    assert re.search(r"LSTM", capsys.readouterr().out)


def test_describe_an_image_trainable(env, fixture_root, capsys):
    assert main(["--data-dir", str(fixture_root), "describe", "cnn_classifier"]) == 0
    assert re.search(r"Conv2d.*\[1, 1, 28, 28\]\s+\[1, 32, 28, 28\]\s+288", capsys.readouterr().out)


def test_describe_refuses_bad_input(env, text_root, capsys):
    config = env / "bad.yaml"
    config.write_text("cell: lstm\nheads: 4\n")
    assert main(["--data-dir", str(text_root), "describe", "text_rnn", "--config", str(config)]) == 2
    assert "unknown hyperparameter(s) heads" in capsys.readouterr().err
    assert main(["describe", "transformer"]) == 2
    assert "unknown trainable 'transformer'" in capsys.readouterr().err
    assert main(["--data-dir", str(text_root), "describe", "cnn_classifier", "--dataset", "imdb"]) == 2
    assert (
        "--dataset: 'imdb' is a data set of texts, and the trainable trains on images (chest_xray, fashion_mnist,"
        in capsys.readouterr().err
    )


def test_retrain_tests_on_every_test_split(text_root):
    data = datasets.load_dataset("sentiment140", text_root, "retrain")
    config = dict(text_cnn.DEFAULTS, min_count=1, epochs=3, filters=16, lr=0.01)  # a few steps on a tiny fixture

    class NoLog:
        def log(self, metrics):
            pass

    result = retrain._train(text_cnn, config, data, 0, NoLog())
    assert result["status"] == "completed"
    assert {"test_acc", "test_auc", "test_manual_acc", "test_manual_auc"} <= set(result)
    assert result["test_acc"] > 0.8 and result["test_manual_acc"] > 0.8  # the fixture's words give the sentiment away


@pytest.mark.slow
def test_weather_experiments_search_retrain_report_and_compare(env, text_root, capsys):
    root = ["--data-dir", str(text_root)]
    tested = {}
    # weather_cnn searches on half the tweets and retrains on all: its vocabulary must come back the same
    for experiment, search_part, retrain_part in (("weather_rnn", "1", "1"), ("weather_cnn", "0.5", "1")):
        assert main([*root, "search", experiment, "--trials", "2", "--max-epochs", "3", "--subset", search_part,
                     "--wandb", "offline"]) == 0  # fmt: skip
        board = pd.read_csv(env / "results" / experiment / "leaderboard.csv")
        assert len(board) == 2 and board["val_rmse"].between(0, 1).all()
        assert main([*root, "retrain", experiment, "--seeds", "1", "--epochs", "6", "--subset", retrain_part,
                     "--wandb", "disabled"]) == 0  # fmt: skip
        retrained = pd.read_csv(env / "results" / experiment / "retrain" / "retrain.csv")
        tested[f"{experiment} (text_{experiment.split('_')[1]})"] = retrained["test_rmse"].iloc[0]
        assert retrained["test_rmse"].between(0, 0.5).all() and retrained["test_auc_micro"].between(0.5, 1).all()
        baseline = pd.read_csv(env / "results" / experiment / "retrain" / "baseline.csv")
        assert {c for c in baseline if c.startswith("test")} == {"test_rmse", "test_auc_micro", "test_auc_macro"}
        assert baseline["test_auc_micro"].iloc[0] > 0.9  # soft labels: ridge regression, which has no loss
        assert main([*root, "report", experiment, "--wandb", "disabled"]) == 0
        report = (env / "results" / experiment / "report" / "report.md").read_text()
        assert "roc.png" in report and "| total" in report and "test_auc_macro" in report
        assert "What a student would try first" in report and "The baseline has no test_loss" in report
    capsys.readouterr()

    assert main(["compare", "weather_rnn", "weather_cnn"]) == 0
    out = env / "results" / "compare_weather_rnn_vs_weather_cnn"
    table = pd.read_csv(out / "auc.csv", index_col=0)
    assert list(table.columns) == ["weather_rnn (text_rnn)", "weather_cnn (text_cnn)"]
    kinds = [k for k in datasets.source("weather_tweets").classes if f"AUC {k}" in table.index]
    assert {"rain", "sun", "cold", "wind"} <= set(kinds)  # the fixture's kinds; the others have no positives
    assert table.loc[["AUC micro", "AUC macro", "test_rmse"]].notna().all().all()
    for column, rmse in tested.items():  # the models compare loads are the ones retrain tested
        assert table.loc["test_rmse", column] == pytest.approx(rmse, rel=1e-4)
    assert (out / "compare_roc.png").stat().st_size > 20_000
    printed = capsys.readouterr().out
    assert "weather_rnn vs weather_cnn" in printed and "ROC curves of weather_rnn, weather_cnn" in printed
    assert str(out / "compare_roc.png") in printed and str(out / "auc.csv") in printed
