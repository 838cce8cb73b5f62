"""The network of pytorch/examples ``mnist/main.py``, exactly, with the variants of the Fashion-MNIST
ablation (exercise 08): baseline, data augmentation, batch normalisation and fine-tuning from MNIST.

Conv 1->32 3x3, ReLU, Conv 32->64 3x3, ReLU, 2x2 max-pool, dropout 0.25, FC 9216->128, ReLU, dropout 0.5,
FC 128->10: 1,199,882 parameters. As in the example, inputs are standardised with its constants and it trains
with Adadelta (lr 1.0, times 0.7 after every epoch) on batches of 64. It outputs logits (the example outputs
their log-softmax for ``nll_loss``; cross-entropy on logits is the same loss).

``variant``:
- ``baseline``: the network as is;
- ``augment``: every training image goes through each of ``augmentations()`` with probability ``augment_p``;
- ``batch_norm``: batch norm after conv1, conv2 and fc1;
- ``finetune``: the weights of the network trained on MNIST (the best of ``pretrain_epochs`` epochs on
  MNIST's validation split, computed once per machine and cached), every layer but fc2 frozen.
"""

import sys
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import StepLR

from trainables import cnn_classifier, common
from tunelab import cache, data as datasets
from tunelab.data import Data

DATASET = "fashion_mnist"
METRIC = "val_acc"
MODE = "max"
IMAGE_CLASSIFIER = True  # the report adds t-SNE, activation maximisation, confusion matrix
PRETRAIN_DATASET = "mnist"  # what the finetune variant pretrains on
EXTRA_DATASETS = (PRETRAIN_DATASET,)
VARIANTS = ("baseline", "augment", "batch_norm", "finetune")
MEAN, STD = 0.1307, 0.3081  # pytorch/examples' Normalize constants

DEFAULTS: dict[str, int | float | bool | str] = {
    "variant": "baseline",  # baseline, augment, batch_norm or finetune (see the module's docstring)
    "optimizer": "adadelta",  # adadelta (as pytorch/examples), sgd, adam or adamw
    "lr": 1.0,  # initial learning rate (pytorch/examples: 1.0 with Adadelta)
    "lr_decay": 0.7,  # learning-rate factor after every epoch (pytorch/examples' StepLR gamma)
    "momentum": 0.9,  # SGD's Nesterov momentum (0 = plain SGD)
    "weight_decay": 0.0,  # L2 penalty (sgd, adam, adadelta) or decoupled weight decay (adamw)
    "batch_size": 64,  # images per training step (pytorch/examples: 64)
    "augment_p": 0.5,  # probability of each augmentation transformation (variant augment)
    "pretrain_epochs": 3,  # MNIST epochs of the finetune variant's pretraining; the best one is kept
    "epochs": 10,  # epochs of the run (the harness sets it; the per-epoch decay needs no horizon)
}
CHOICES = {"variant": VARIANTS, "optimizer": common.OPTIMIZERS}
RANGES = {**common.TRAINING_RANGES, "lr_decay": "> 0", "augment_p": "[0, 1]", "pretrain_epochs": ">= 1"}
METRICS = ("val_acc", "val_loss", "train_acc", "train_loss")


class Standardize(nn.Module):
    """(x - MEAN) / STD, the example's ``transforms.Normalize`` inside the model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - MEAN) / STD


def make_model(batch_norm: bool, shape: tuple, n_classes: int) -> nn.Sequential:
    """The example's network, with its layer names, for images of ``shape`` (C, H, W) as floats in [0, 1]."""
    c, h, w = shape

    def norm(name: str, layer: nn.Module) -> list:
        return [(name, layer)] if batch_norm else []

    layers = [
        ("normalize", Standardize()),
        ("conv1", nn.Conv2d(c, 32, 3, 1)), *norm("bn1", nn.BatchNorm2d(32)), ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(32, 64, 3, 1)), *norm("bn2", nn.BatchNorm2d(64)), ("relu2", nn.ReLU()),
        ("max_pool", nn.MaxPool2d(2)), ("dropout1", nn.Dropout(0.25)), ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(64 * ((h - 4) // 2) * ((w - 4) // 2), 128)), *norm("bn3", nn.BatchNorm1d(128)),
        ("relu3", nn.ReLU()), ("dropout2", nn.Dropout(0.5)),
        ("fc2", nn.Linear(128, n_classes)),
    ]  # fmt: skip
    return nn.Sequential(OrderedDict(layers))


def augmentations(size: tuple[int, int], p: float = 1.0) -> dict:
    """The augment variant's transformations of batches of float images of ``size``, by name, each applied to an
    image with probability ``p``. Kornia draws the random parameters per image, on the batch's device."""
    import kornia.augmentation as K  # loaded only when augmenting

    return {
        "horizontal flip": K.RandomHorizontalFlip(p=p),
        # a crop of the image padded with 4 px of zeros, as a shift (Kornia's RandomCrop draws p per batch)
        "random crop (4 px zero padding)": K.RandomAffine(
            0.0, translate=(4 / size[1], 4 / size[0]), resample="nearest", p=p
        ),
        "rotation (up to 15°)": K.RandomRotation(15.0, p=p),
        "random erasing (2-15 % of the image)": K.RandomErasing(scale=(0.02, 0.15), value=0.0, p=p),
    }


def mnist_weights(data: Data, epochs: int) -> dict[str, torch.Tensor]:
    """The baseline network trained on MNIST as pytorch/examples does, the best of ``epochs`` epochs on
    MNIST's validation split: computed once per machine (and per MNIST copy and pretraining config), then read
    from the cache."""
    mnist = datasets.load_dataset(PRETRAIN_DATASET, data.root or datasets.data_root(), "search", device=data.device)
    config = {**DEFAULTS, "variant": "baseline", "epochs": epochs}

    def pretrain() -> dict:
        return {"model": common.best_epoch_weights(sys.modules[__name__], config, mnist)}

    return cache.pretrained(f"examples_net_{PRETRAIN_DATASET}", config, mnist, pretrain)["model"]


def build(config: dict, data: Data) -> dict:
    common.check_choices(config, CHOICES)
    x, _ = data.splits["train"]
    model = make_model(config["variant"] == "batch_norm", tuple(x.shape[1:]), len(data.classes))
    if config["variant"] == "finetune":
        model.load_state_dict(mnist_weights(data, config["pretrain_epochs"]))
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("fc2."))
    # channels-last memory makes oneDNN's CPU convolutions faster (the ignore: torch's stubs lack this .to)
    model = model.to(data.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = common.make_optimizer(config, [p for p in model.parameters() if p.requires_grad])
    scheduler = StepLR(optimizer, step_size=1, gamma=config["lr_decay"])  # stepped after every epoch
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler}


def train_epoch(parts: dict, data: Data, config: dict) -> dict[str, float]:
    model = parts["model"]
    x, y = data.splits["train"]
    augment = None
    if config["variant"] == "augment":
        augment = nn.Sequential(*augmentations((x.shape[2], x.shape[3]), config["augment_p"]).values())
    model.train()

    def logits_of(idx: torch.Tensor) -> torch.Tensor:
        xb = common.to_float(x[idx])
        return model(augment(xb) if augment else xb)

    metrics = common.classifier_epoch(y, config["batch_size"], logits_of, F.cross_entropy, parts["optimizer"])
    parts["scheduler"].step()  # the example's StepLR: once per epoch
    return metrics


# logits, loss and accuracy of a classifier
outputs, metrics, evaluate, ensemble = (cnn_classifier.outputs, cnn_classifier.metrics, cnn_classifier.evaluate,
                                        cnn_classifier.ensemble)  # fmt: skip
predict_proba = cnn_classifier.predict_proba


def figures(parts: dict, data: Data, outdir: Path) -> dict[str, Path]:
    # plotting libraries load only for the report, not in every trial worker
    from matplotlib.figure import Figure

    image = common.to_float(data.splits["test"][0][0])
    draws = 5
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the same draws in every report
        transforms = augmentations((image.shape[1], image.shape[2]))
        rows = [(name, t(image.expand(draws, -1, -1, -1))) for name, t in transforms.items()]
    fig = Figure(figsize=(1.6 * (draws + 1), 1.7 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), draws + 1, squeeze=False)
    for ax_row, (name, images) in zip(axes, rows):
        for ax, shown in zip(ax_row, [image, *images]):
            ax.imshow(shown.cpu().numpy().transpose(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    axes[0, 0].set_title("original", fontsize=9)
    for ax in axes[0, 1:]:
        ax.set_title("random draw", fontsize=9)
    path = Path(outdir) / "augmentations.png"
    fig.savefig(path, dpi=100)
    return {"The augment variant's transformations, each applied to one test image (5 random draws)": path}
