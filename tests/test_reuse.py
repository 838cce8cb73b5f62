"""Trials reuse their Ray worker process, and each still starts clean: a config trained in a worker that served
other trials gives the metrics it gives when trained afresh."""

import pandas as pd
import pytest
import torch
import yaml

from tunelab import data as datasets
from tunelab.cli import main
from tunelab.spec import spaces
from tunelab.store import leaderboard, runs
from tunelab.trainable import protocol, training

pytestmark = pytest.mark.slow

EPOCHS = 2
SPACE = {
    "trainable": "cnn_classifier", "dataset": "fashion_mnist", "method": "random", "seed": 0,
    "metric": {"name": "val_acc", "goal": "maximize"}, "run_cap": 4, "max_epochs": EPOCHS,
    "resources": {"cpu": 1, "gpu": 0},
    "parameters": {"depth": {"value": 1}, "hidden": {"value": 0}, "batch_size": {"value": 64},
                   "width": {"values": [8, 16]}, "batch_norm": {"values": [False, True]}},
}  # fmt: skip
SEARCHED = ("width", "batch_norm")


def fresh_metrics(spec: spaces.Spec, sampled: dict, root) -> list[dict]:
    """The config trained here, in a process that has run no trial, as a trial trains it."""
    torch.set_num_threads(1)
    module = protocol.load_trainable(spec.trainable)
    data = datasets.load_dataset(spec.dataset, root, "search", 1.0, "cpu")
    config = spec.config(sampled)
    parts = training.build(module, config, data, spec.seed)
    return [training.epoch(module, parts, data, config, "val") for _ in range(EPOCHS)]


def test_a_config_trained_in_a_reused_worker_matches_a_fresh_one(env, fixture_root, tmp_path):
    path = tmp_path / "reuse.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    argv = ["--data-dir", str(fixture_root), "search", str(path), "--concurrency", "1", "--wandb", "disabled"]
    assert main(argv) == 0

    run = runs.open_run("reuse", env / "results")
    histories = leaderboard.histories(run)
    assert len(histories) == 4
    assert pd.concat(histories.values())["worker_pid"].nunique() == 1  # one worker process served every trial
    board = leaderboard.table(run).set_index("trial_id")
    configs = {t: {k: board.loc[t, f"config/{k}"] for k in SEARCHED} for t in board.index}
    in_order = sorted(board.index, key=lambda t: histories[t]["timestamp"].iloc[0])
    assert any(configs[a] != configs[b] for a, b in zip(in_order, in_order[1:]))  # a worker trained another model first

    fresh = {}
    for trial, sampled in configs.items():
        key = tuple(sampled.values())
        expected = fresh.setdefault(key, fresh_metrics(run.spec, sampled, fixture_root))
        for epoch, want in enumerate(expected):
            for metric in ("train_loss", "train_acc", "val_loss", "val_acc"):
                got = histories[trial][metric].iloc[epoch]
                assert got == pytest.approx(want[metric], rel=1e-6), (trial, sampled, epoch, metric)
