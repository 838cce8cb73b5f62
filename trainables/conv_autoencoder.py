"""A convolutional autoencoder for small grayscale images (the Fashion-MNIST and MNIST assignments).

Encoder: ``depth`` blocks of convolution + activation + 2x2 max-pool, channels width * 2**i, then an
optional 1x1 convolution to ``code_channels``. The decoder mirrors it, upsampling by transposed
convolutions or by resizing + convolution, back to the exact input size (28 -> 14 -> 7 -> 3 -> 7 -> 14 ->
28). The last layer outputs logits; the sigmoid lives in the loss. The assignment's baseline is the
defaults: Conv(16)+pool, Conv(32)+pool, Conv(64)+pool, SELU, mirrored with transposed convolutions.
Training, metrics and figures are those of every autoencoder here (``trainables.reconstruction``).
"""

from functools import partial

import torch
from torch import nn

from trainables import common, reconstruction
from trainables.reconstruction import AutoEncoder, evaluate, figures, reconstruct, train_epoch  # noqa: F401 (shared)
from tunelab.data import Data

DATASET = "fashion_mnist"
METRIC = "val_mse"
MODE = "min"

DEFAULTS: dict[str, int | float | bool | str] = {
    "width": 16,  # channels of the first encoder block, doubled per block
    "depth": 3,  # encoder blocks, each halving the image (1-3 for 28 px images)
    "kernel_size": 3,  # 3 or 5, "same" padding
    "activation": "selu",  # relu, selu or elu, after every convolution but the output
    "code_channels": 0,  # channels of a 1x1 convolution closing the encoder (0 = none)
    "upsample": "transpose",  # decoder upsampling: transpose (stride-2 transposed conv), nearest or bilinear
    "loss": "bce",  # training loss on pixels in [0, 1]: bce (with logits) or mse (of the sigmoid)
    "optimizer": "adam",  # sgd, adam or adamw
    "lr": 2e-3,  # peak learning rate
    "momentum": 0.9,  # SGD's Nesterov momentum (0 = plain SGD)
    "weight_decay": 0.0,  # L2 penalty (sgd, adam) or decoupled weight decay (adamw)
    "schedule": "cosine",  # LR schedule per batch: constant, cosine, step or onecycle
    "batch_size": 128,  # images per training step
    "epochs": 10,  # epochs the LR schedule spans (the harness sets it to the run's length)
}

ACTIVATIONS = {"relu": nn.ReLU, "selu": nn.SELU, "elu": nn.ELU}
UPSAMPLES = ("transpose", "nearest", "bilinear")
CHOICES = {**common.TRAINING_CHOICES, "activation": tuple(ACTIVATIONS), "upsample": UPSAMPLES,
           "loss": reconstruction.LOSSES}  # fmt: skip
RANGES = {**common.TRAINING_RANGES, "width": ">= 1", "depth": ">= 1", "kernel_size": ">= 1", "code_channels": ">= 0"}
METRICS = reconstruction.METRICS


def transpose_padding(k: int, size_in: int, size_out: int) -> tuple[int, int]:
    """padding and output_padding that make a stride-2 transposed convolution map size_in to size_out."""
    d = 2 * (size_in - 1) + k - size_out  # = 2 * padding - output_padding
    return (d + 1) // 2, d % 2


def upsampler(kind: str, c_in: int, c_out: int, k: int, size_in: tuple, size_out: tuple) -> nn.Module:
    """A decoder step from c_in channels of size_in to c_out channels of size_out (about twice the size)."""
    if kind == "transpose":
        (p_h, op_h), (p_w, op_w) = (transpose_padding(k, a, b) for a, b in zip(size_in, size_out))
        return nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=(p_h, p_w), output_padding=(op_h, op_w))
    return nn.Sequential(nn.Upsample(size=size_out, mode=kind), nn.Conv2d(c_in, c_out, k, padding=k // 2))


def make_model(config: dict, shape: tuple) -> AutoEncoder:
    """The autoencoder for images of ``shape`` (C, H, W); it takes floats in [0, 1] and returns logits."""
    k, act = config["kernel_size"], partial(ACTIVATIONS[config["activation"]], inplace=True)
    c_in, size = shape[0], tuple(shape[1:])
    encoder, sizes = [], []  # sizes: each encoder block's input size, the decoder's targets
    for i in range(config["depth"]):
        c_out = config["width"] * 2**i
        encoder += [nn.Conv2d(c_in, c_out, k, padding=k // 2), act(), nn.MaxPool2d(2)]
        sizes.append(size)
        c_in, size = c_out, (size[0] // 2, size[1] // 2)
    if config["code_channels"]:
        encoder += [nn.Conv2d(c_in, config["code_channels"], 1), act()]
        c_in = config["code_channels"]
    decoder = []
    for i in reversed(range(config["depth"])):
        c_out = config["width"] * 2 ** (i - 1) if i else shape[0]
        decoder.append(upsampler(config["upsample"], c_in, c_out, k, size, sizes[i]))
        decoder += [act()] if i else []
        c_in, size = c_out, sizes[i]
    return AutoEncoder(nn.Sequential(*encoder), nn.Sequential(*decoder), config["loss"])


def build(config: dict, data: Data) -> dict:
    common.check_choices(config, CHOICES)
    if config["kernel_size"] % 2 == 0 or config["kernel_size"] < 3:
        raise ValueError(f"kernel_size must be odd and at least 3, not {config['kernel_size']}")
    x, _ = data.splits["train"]
    # channels-last memory makes oneDNN's CPU (transposed) convolutions and pooling ~2x faster (the ignore: torch's
    # stubs lack this .to)
    model = make_model(config, x.shape[1:]).to(data.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    return reconstruction.training_parts(model, config, len(x))
