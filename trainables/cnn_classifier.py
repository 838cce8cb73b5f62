"""A deep CNN classifier for small grayscale images (the Fashion-MNIST assignment).

``depth`` blocks of ``convs_per_block`` convolutions, each followed by batch norm (optional) and ReLU, and
a 2x2 max-pool per block; channels double per block. Then an optional dense layer, dropout and the logits.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainables import common
from tunelab.data import Data

DATASET = "fashion_mnist"
METRIC = "val_acc"
MODE = "max"
IMAGE_CLASSIFIER = True  # the report adds t-SNE, activation maximisation, confusion matrix

DEFAULTS: dict[str, int | float | bool | str] = {
    "depth": 2,  # conv blocks, each ending in a 2x2 max-pool (1-3 for 28 px images)
    "width": 32,  # channels of the first block, doubled per block
    "convs_per_block": 1,  # convolutions per block (1-3)
    "kernel_size": 3,  # 3 or 5, "same" padding
    "batch_norm": True,  # batch norm after every convolution
    "dropout": 0.25,  # dropout rate before the output layer
    "hidden": 128,  # width of a dense ReLU layer before the output (0 = none)
    "augment": "flip",  # none, flip, crop, flip_crop, affine or flip_affine (see common.augment)
    "crop_pad": 2,  # largest shift in px of the crop and affine augmentations
    "optimizer": "adamw",  # sgd, adam or adamw
    "lr": 3e-3,  # peak learning rate
    "momentum": 0.9,  # SGD's Nesterov momentum (0 = plain SGD)
    "weight_decay": 5e-4,  # L2 penalty (sgd, adam) or decoupled weight decay (adamw)
    "schedule": "onecycle",  # LR schedule per batch: constant, cosine, step or onecycle
    "batch_size": 128,  # images per training step
    "label_smoothing": 0.0,  # cross-entropy label smoothing
    "epochs": 6,  # epochs the LR schedule spans (the harness sets it to the run's length)
}

CHOICES = {**common.TRAINING_CHOICES, "augment": common.AUGMENTS}  # the values a string key may take
RANGES = {
    **common.TRAINING_RANGES,
    "depth": ">= 1",
    "width": ">= 1",
    "convs_per_block": ">= 1",
    "kernel_size": ">= 1",
    "dropout": "[0, 1)",
    "hidden": ">= 0",
    "crop_pad": ">= 0",
    "label_smoothing": "[0, 1]",
}  # of a number key
METRICS = ("val_acc", "val_loss", "train_acc", "train_loss")  # what a search may optimise


class Normalize(nn.Module):
    """Standardise images in [0, 1] with the training set's mean and std (kept in the state dict)."""

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def make_model(config: dict, images: torch.Tensor, n_classes: int) -> nn.Sequential:
    """The network for images like ``images`` (uint8, N x C x H x W); it takes floats in [0, 1]."""
    k, bn = config["kernel_size"], config["batch_norm"]
    std, mean = torch.std_mean(common.to_float(images))
    layers: list[nn.Module] = [Normalize(mean.item(), std.item())]
    c_in, (h, w) = images.shape[1], images.shape[2:]
    for block in range(config["depth"]):
        c_out = config["width"] * 2**block
        for i in range(config["convs_per_block"]):
            layers.append(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=not bn))
            # the block's max-pool comes before its last BN + ReLU (as in airbench): 4x less work for them
            layers += [nn.MaxPool2d(2)] if i == config["convs_per_block"] - 1 else []
            layers += [nn.BatchNorm2d(c_out)] if bn else []
            layers.append(nn.ReLU(inplace=True))
            c_in = c_out
        h, w = h // 2, w // 2
    layers.append(nn.Flatten())
    features = c_in * h * w
    if config["hidden"]:
        layers += [nn.Linear(features, config["hidden"]), nn.ReLU(inplace=True)]
        features = config["hidden"]
    layers += [nn.Dropout(config["dropout"]), nn.Linear(features, n_classes)]
    return nn.Sequential(*layers)


def build(config: dict, data: Data) -> dict:
    common.check_choices(config, CHOICES)
    if config["kernel_size"] % 2 == 0:
        raise ValueError(f"kernel_size must be odd for 'same' padding, not {config['kernel_size']}")
    x, _ = data.splits["train"]
    # channels-last memory makes oneDNN's CPU convolutions up to ~2x faster (the ignore: torch's stubs lack this .to)
    model = make_model(config, x, len(data.classes)).to(data.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = common.make_optimizer(config, model.parameters())
    return {"model": model, "optimizer": optimizer, "scheduler": common.make_scheduler(config, optimizer, len(x))}


def train_epoch(parts: dict, data: Data, config: dict) -> dict[str, float]:
    model = parts["model"]
    x, y = data.splits["train"]
    model.train()
    return common.classifier_epoch(
        y, config["batch_size"],
        lambda idx: model(common.augment(common.to_float(x[idx]), config["augment"], config["crop_pad"])),
        lambda logits, labels: F.cross_entropy(logits, labels, label_smoothing=config["label_smoothing"]),
        parts["optimizer"], parts["scheduler"],
    )  # fmt: skip


def outputs(parts: dict, data: Data, split: str) -> torch.Tensor:
    """The logits of a split's images."""
    return common.predict(parts["model"], data.splits[split][0])


def metrics(logits: torch.Tensor, data: Data, split: str, config: dict | None = None) -> dict[str, float]:
    """Cross-entropy and accuracy of ``logits`` for the split's labels (whatever the model's config)."""
    y = data.splits[split][1]
    return {"loss": F.cross_entropy(logits, y).item(), "acc": (logits.argmax(1) == y).float().mean().item()}


def evaluate(parts: dict, data: Data, split: str) -> dict[str, float]:
    return metrics(outputs(parts, data, split), data, split)


def predict_proba(parts: dict, data: Data, split: str) -> tuple:
    """The class probabilities (softmax of the logits) of a split's images and their labels, as numpy arrays."""
    return outputs(parts, data, split).softmax(1).cpu().numpy(), data.splits[split][1].cpu().numpy()


ensemble = common.softmax_ensemble


def figures(parts: dict, data: Data, outdir: Path) -> dict[str, Path]:
    """A grid of test images with their predicted labels (the report's classifier analysis adds the
    confusion matrix, per-class accuracy, t-SNE and activation maximisation for every classifier)."""
    from matplotlib.figure import Figure  # plotting loads only for the report, not in every trial worker

    x, y = data.splits["test"]
    pred = common.predict(parts["model"], x[:24]).argmax(1).cpu().numpy()
    fig = Figure(figsize=(12, 9), layout="constrained")
    for ax, image, p, t in zip(fig.subplots(4, 6).flat, x[:24].cpu().numpy(), pred, y[:24].cpu().numpy()):
        ax.imshow(image.transpose(1, 2, 0).squeeze(-1), cmap="gray")
        ax.set_title(f"{data.classes[p]}\n(true: {data.classes[t]})", fontsize=9, color="black" if p == t else "red")
        ax.axis("off")
    grid = Path(outdir) / "test_predictions.png"
    fig.savefig(grid, dpi=100)
    return {"Test images: predicted (true) label, errors in red": grid}
