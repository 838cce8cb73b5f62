"""The report's layer table: every leaf layer by the name its weights carry, its output shape and parameters."""

import torch
from torch import nn

from tunelab.report import layer_table


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
