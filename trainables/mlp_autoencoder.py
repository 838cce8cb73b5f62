"""A fully connected (stacked) autoencoder for small grayscale images (the MNIST autoencoder exercise).

Encoder: flatten, an optional hidden layer, the code layer; the decoder mirrors it back to the image. Every
layer but the output has an activation (the code layer its own); the output gives logits, the sigmoid
lives in the loss. The exercise's network is the defaults: 784 -> 100 -> 30 -> 100 -> 784 with SELU.
Training, metrics and figures are those of every autoencoder here (``trainables.reconstruction``).
"""

import math

from torch import nn

from trainables import common, reconstruction
from trainables.reconstruction import AutoEncoder, evaluate, figures, reconstruct, train_epoch  # noqa: F401 (shared)
from tunelab.data import Data

DATASET = "mnist"
METRIC = "val_mse"
MODE = "min"

DEFAULTS: dict[str, int | float | bool | str] = {
    "hidden": 100,  # width of the hidden layer on each side of the code (0 = none)
    "code": 30,  # width of the code layer
    "activation": "selu",  # after the hidden layers: relu, selu, elu or tanh
    "code_activation": "selu",  # after the code layer: relu, selu, elu, tanh or none
    "loss": "bce",  # training loss on pixels in [0, 1]: bce (with logits) or mse (of the sigmoid)
    "optimizer": "adam",  # sgd, adam or adamw
    "lr": 1e-3,  # peak learning rate
    "momentum": 0.9,  # SGD's Nesterov momentum (0 = plain SGD)
    "weight_decay": 0.0,  # L2 penalty (sgd, adam) or decoupled weight decay (adamw)
    "schedule": "constant",  # LR schedule per batch: constant, cosine, step or onecycle
    "batch_size": 128,  # images per training step
    "epochs": 10,  # epochs the LR schedule spans (the harness sets it to the run's length)
}

ACTIVATIONS = {"relu": nn.ReLU, "selu": nn.SELU, "elu": nn.ELU, "tanh": nn.Tanh, "none": nn.Identity}
CHOICES = {**common.TRAINING_CHOICES, "activation": tuple(a for a in ACTIVATIONS if a != "none"),
           "code_activation": tuple(ACTIVATIONS), "loss": reconstruction.LOSSES}  # fmt: skip
RANGES = {**common.TRAINING_RANGES, "hidden": ">= 0", "code": ">= 1"}
METRICS = reconstruction.METRICS


def make_model(config: dict, shape: tuple) -> AutoEncoder:
    """The autoencoder for images of ``shape`` (C, H, W); it takes floats in [0, 1] and returns logits."""
    act, code_act = ACTIVATIONS[config["activation"]], ACTIVATIONS[config["code_activation"]]
    widths = [math.prod(shape), *([config["hidden"]] if config["hidden"] else []), config["code"]]
    n = len(widths) - 1  # linear layers on each side
    encoder: list[nn.Module] = [nn.Flatten()]
    for i in range(n):
        encoder += [nn.Linear(widths[i], widths[i + 1]), code_act() if i == n - 1 else act()]
    back, decoder = widths[::-1], []
    for i in range(n):
        decoder += [nn.Linear(back[i], back[i + 1]), act() if i < n - 1 else nn.Unflatten(1, tuple(shape))]
    return AutoEncoder(nn.Sequential(*encoder), nn.Sequential(*decoder), config["loss"])


def check(config: dict) -> None:
    """Reject unknown choices and empty layers before building."""
    common.check_choices(config, CHOICES)
    if config["code"] < 1 or config["hidden"] < 0:
        raise ValueError(f"code must be >= 1 and hidden >= 0, not {config['code']} and {config['hidden']}")


def build(config: dict, data: Data) -> dict:
    check(config)
    x, _ = data.splits["train"]
    return reconstruction.training_parts(make_model(config, x.shape[1:]).to(data.device), config, len(x))
