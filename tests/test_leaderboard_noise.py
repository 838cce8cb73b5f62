"""The leaderboard's noise: Wilson intervals of validation accuracies, the trials tied with the best, and ``prefer``
choosing among them; on the 100 fashion_cnn trials recorded in bench/curves (each scored on 180 validation images)."""

import json
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from tests.helpers import REPO
from trainables import cnn_classifier
from tunelab.errors import UserError
from tunelab.spec import spaces
from tunelab.spec.rules import best_epoch_of
from tunelab.store import leaderboard, runs

CURVES = REPO / "bench" / "curves" / "fashion_cnn.csv"


@pytest.fixture(scope="module")
def board() -> pd.DataFrame:
    """The leaderboard of the recorded trials, as ``leaderboard.table`` makes it: each trial at its best epoch, best
    first, with its interval, whether it is tied with the best, its parameters and seconds."""
    recording = json.loads(CURVES.read_text().splitlines()[0].removeprefix("# recording: "))
    curves = pd.read_csv(CURVES, comment="#")
    spec = spaces.load_spec("fashion_cnn")
    rows, image = [], torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    for config_id, curve in curves.groupby("config_id"):
        best = curve[curve["epoch"] == best_epoch_of(spec, dict(zip(curve["epoch"], curve["val_acc"])))].iloc[0]
        sampled = {k: best[k].item() if hasattr(best[k], "item") else best[k] for k in spec.params}
        with torch.device("meta"):  # the parameter count without allocating the weights
            model = cnn_classifier.make_model(spec.config(sampled), image, 10)
        low, high = leaderboard.interval("val_acc", best["val_acc"], recording["val_images"])
        rows.append({"trial_id": str(config_id), "status": "completed", "val_acc": best["val_acc"], "val_acc_low": low,
                     "val_acc_high": high, "epochs": len(curve), "best_epoch": best["epoch"],
                     "params": sum(p.numel() for p in model.parameters()), "duration_s": curve["cpu_s"].sum(),
                     "val_examples": recording["val_images"],
                     **{f"config/{k}": v for k, v in sampled.items()}})  # fmt: skip
    frame = pd.DataFrame(rows).sort_values("val_acc", ascending=False, kind="stable").reset_index(drop=True)
    frame.insert(frame.columns.get_loc("epochs"), "tied", leaderboard.tied_with_best(frame, "val_acc"))
    return frame


@pytest.mark.parametrize("right, n, low, high", [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
                                                 (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])  # fmt: skip
def test_accuracy_intervals_are_wilsons_as_newcombe_1998_tabulates_them(right, n, low, high):
    # R. G. Newcombe, "Two-sided confidence intervals for the single proportion", Stat. Med. 17 (1998), table II
    assert leaderboard.interval("val_acc", right / n, n) == pytest.approx((low, high), abs=1e-4)


def test_a_metric_that_is_no_share_of_the_examples_or_of_unknown_examples_has_no_interval():
    for metric, value, examples in (("val_loss", 0.3, 600), ("val_pixel_acc", 0.98, 600), ("val_acc", 0.9, 0),
                                    ("val_acc", math.nan, 600)):  # fmt: skip
        assert all(math.isnan(bound) for bound in leaderboard.interval(metric, value, examples))


def test_on_180_validation_images_many_recorded_trials_are_tied_with_the_best_and_on_100_times_more_few(board):
    tied = board["tied"].tolist()
    n_tied = tied.count(True)
    assert tied == [True] * n_tied + [False] * (len(board) - n_tied)  # a worse accuracy is never more tied
    assert n_tied >= 10  # the order of the top ten means little on 180 images
    assert board["val_acc_high"].iloc[n_tied - 1] > board["val_acc_low"].iloc[0]  # a tie's interval meets the best's
    assert (board["val_acc_low"] <= board["val_acc"]).all() and (board["val_acc"] <= board["val_acc_high"]).all()
    more = board.assign(val_examples=100 * board["val_examples"])  # the same accuracies, measured on 18,000 images
    assert 1 <= leaderboard.tied_with_best(more, "val_acc").count(True) < n_tied / 3


@pytest.mark.parametrize("prefer", ["best", "small", "fast"])
def test_best_yaml_and_retrain_take_the_tied_trial_the_spec_prefers(board, prefer, tmp_path, monkeypatch):
    tied = board[board["tied"]]
    cost = {"best": pd.Series(range(len(tied)), tied.index), "small": tied["params"],
            "fast": tied["duration_s"] / tied["epochs"]}[prefer]  # fmt: skip
    chosen = board.loc[cost.idxmin(), "trial_id"]  # the better of equal ones
    assert (prefer == "best") == (chosen == board["trial_id"].iloc[0])
    run = runs.StoredRun(tmp_path, replace(spaces.load_spec("fashion_cnn"), prefer=prefer), runs.Options(), tmp_path)
    monkeypatch.setattr(leaderboard, "table", lambda _: board)  # the search's results
    leaderboard.write(run)

    best = yaml.safe_load(run.best_file.read_text())
    assert (best["trial_id"], best["prefer"]) == (chosen, prefer)
    assert best["config"] == run.config_of(board.set_index("trial_id").loc[chosen].rename(None))
    others = [t for t in board["trial_id"] if t != chosen]
    assert run.ranked(3)["trial_id"].tolist() == [chosen, *others[:2]]  # retrain's, from leaderboard.csv
    assert f"take, of the tied, {spaces.PREFER[prefer]}" in (tmp_path / "leaderboard.md").read_text()


def test_without_an_interval_only_the_best_is_known_to_be_tied_and_leaderboard_md_says_so():
    spec = spaces.parse({"trainable": "conv_autoencoder", "parameters": {"lr": {"values": [0.001, 0.01]}},
                         "prefer": "small"}, Path("ae.yaml"))  # fmt: skip
    frame = pd.DataFrame({"trial_id": ["a", "b", "c"], "val_mse": [0.010, 0.011, math.nan],
                          "val_mse_low": math.nan, "val_mse_high": math.nan, "epochs": [3, 3, 0], "params": [9, 1, 1],
                          "duration_s": [3.0, 1.0, 0.0], "val_examples": 600})  # fmt: skip
    frame.insert(3, "tied", leaderboard.tied_with_best(frame, "val_mse"))
    assert frame["tied"].tolist() == [True, None, None]
    assert runs.preferred_first(frame, spec.prefer)["trial_id"].tolist() == ["a", "b", "c"]  # b is no known tie
    shown = leaderboard.shown(frame, spec)
    assert shown["val_mse 95 %"].tolist() == ["—"] * 3 and shown["tied"].tolist() == [True, "—", "—"]
    assert "val_mse: no interval" in leaderboard.noise_note(spec)


def test_prefer_in_a_search_space_file():
    def parse(**top) -> spaces.Spec:
        raw = {"trainable": "cnn_classifier", "parameters": {"width": {"values": [16, 32]}}, **top}
        return spaces.parse(raw, Path("exp.yaml"))

    assert parse().prefer == "best" and parse(prefer="fast").prefer == "fast"
    with pytest.raises(
        UserError,
        match=r"^exp.yaml: prefer: 'smallest' is not allowed; allowed: best \(the best "
        r"trial\), small \(the fewest parameters\), fast \(the least time per epoch\)",
    ):
        parse(prefer="smallest")
    objectives = [{"name": "val_acc", "goal": "maximize"}, {"name": "params", "goal": "minimize"}]
    with pytest.raises(
        UserError,
        match="exp.yaml: prefer: small chooses among the trials tied with the best of one "
        "metric; a search of several objectives hands in a Pareto-optimal trial",
    ):
        parse(prefer="small", metric=objectives)
    saved = parse(prefer="small").saved()
    del saved["prefer"]  # a run stored before there was prefer
    assert spaces.restore(saved).prefer == "best"
