"""The report's layer table (every leaf layer by the name its weights carry, its output shape and parameters) and
its importance figure."""

import numpy as np
import optuna
import pandas as pd
import torch
from torch import nn

from tests.helpers import SMALL_CNN
from tunelab.report.report import _importance, importances, layer_table
from tunelab.spec import spaces


def test_layer_table_names_nested_layers_as_their_weights_are_named():
    model = nn.Sequential()
    model.add_module("encoder", nn.Sequential(nn.Linear(4, 3), nn.ReLU()))
    model.add_module("head", nn.Linear(3, 2))
    table = layer_table(model, torch.zeros(1, 4))
    assert list(table["layer"]) == ["encoder.0", "encoder.1", "head", "total"]
    assert list(table["parameters"]) == [15, 0, 8, 23]
    weights = {name.rsplit(".", 1)[0] for name in model.state_dict()}
    assert weights <= set(table["layer"])
    assert table["output shape"].iloc[0] == "[1, 3]"


def test_importance_finds_the_parameter_that_decides_the_metric_and_is_the_same_each_time(tmp_path):
    spec = spaces.load_spec(str(SMALL_CNN))
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    configs = [spec.config(sampler.ask(spec.params).params) for _ in range(16)]
    noise = np.random.default_rng(0).normal(0, 0.002, len(configs))
    board = pd.DataFrame([{f"config/{k}": v for k, v in c.items()} for c in configs])
    board["val_acc"] = 0.83 + 0.06 * board["config/batch_norm"] + noise  # batch norm decides, nothing else does
    shares = importances(spec, board)
    assert next(iter(shares)) == "batch_norm" and shares["batch_norm"] > 0.8, shares
    assert importances(spec, board) == shares  # seeded: a report written again shows the same
    figure = _importance(spec, board, tmp_path / "importance.png")
    assert figure.stat().st_size > 5000
