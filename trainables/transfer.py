"""Transfer learning: a pretrained image backbone (``trainables.backbones``) and a new dense output layer.

``freeze`` says what trains: ``linear_probe`` the output layer only (every other weight frozen),
``finetune_last_block`` the backbone's last block too, ``finetune_all`` every weight, and ``scratch`` every
weight from a random initialisation. Images are resized to ``input_size`` px, grayscale is repeated to the
backbone's channels, and they are normalised as its weights expect; ``augment`` transforms the training images
where they train (``finetune_all``, ``scratch``). What is frozen never changes, so its outputs are computed once
per backbone, input size and set of images, and cached with tunelab.cache: each epoch then trains only the rest,
and a linear probe of a backbone that takes minutes per pass trains in seconds.

With two classes (the second is the positive one: pneumonia) evaluate also reports sensitivity, specificity,
balanced accuracy and ROC-AUC, and figures draw the ROC curve.
"""

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainables import backbones, common
from tunelab import cache, figures as plots
from tunelab.data import Data
from tunelab.errors import UserError

DATASET = "fashion_mnist"
METRIC = "val_acc"
MODE = "max"
IMAGE_CLASSIFIER = True  # the report adds t-SNE, activation maximisation, confusion matrix

FREEZES = ("linear_probe", "finetune_last_block", "finetune_all", "scratch")
# how many of the stages prep, prefix, last, head are frozen
FROZEN_PARTS = {"linear_probe": 3, "finetune_last_block": 2, "finetune_all": 0, "scratch": 0}
# the values a string key may take (the backbones: prepare, which needs torchvision for their names)
CHOICES = {**common.TRAINING_CHOICES, "freeze": FREEZES, "augment": common.AUGMENTS}
RANGES = {**common.TRAINING_RANGES, "input_size": ">= 1", "class_weight": ">= 0", "crop_pad": ">= 0"}
# with two classes also sensitivity, specificity, balanced_acc and auc (see metrics)
METRICS = ("val_acc", "val_loss", "val_sensitivity", "val_specificity", "val_balanced_acc", "val_auc", "train_acc",
           "train_loss")  # fmt: skip

DEFAULTS: dict[str, int | float | bool | str] = {
    "backbone": "efficientnet_lite0",  # efficientnet_lite0, mnist_cnn, or torchvision's resnet*/vgg* (see backbones)
    "freeze": "linear_probe",  # linear_probe, finetune_last_block, finetune_all or scratch
    "input_size": 64,  # side in px images are resized to (ImageNet's 224 is 12x slower; mnist_cnn takes 28)
    "class_weight": 0.0,  # loss weight of class c is (n / (classes * n_c)) ** class_weight: 0 none, 1 balanced
    "optimizer": "adamw",  # sgd, adam or adamw
    "lr": 1e-3,  # peak learning rate
    "momentum": 0.9,  # SGD's Nesterov momentum (0 = plain SGD)
    "weight_decay": 1e-4,  # L2 penalty (sgd, adam) or decoupled weight decay (adamw)
    "schedule": "cosine",  # LR schedule per batch: constant, cosine, step or onecycle
    "augment": "none",  # of the training images (common.AUGMENTS), where nothing is frozen: finetune_all, scratch
    "crop_pad": 2,  # largest shift in px of the crop and affine augmentations
    "batch_size": 64,  # images per training step
    "epochs": 5,  # epochs the LR schedule spans (the harness sets it to the run's length)
}


class Prep(nn.Module):
    """Images as floats in [0, 1] -> the backbone's input: ``size`` px square, its channels, normalised."""

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, size: int, channels: int, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.size, self.channels = size, channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        if x.shape[1] != self.channels:
            x = x.mean(1, keepdim=True).expand(-1, self.channels, -1, -1)
        return (x - self.mean) / self.std


class TransferNet(nn.Module):
    """``frozen`` (no gradients, always in eval mode), then ``trainable``. The state dict holds the trainable
    part only: the frozen one is rebuilt from the backbone's pretrained weights."""

    def __init__(self, frozen: nn.Sequential, trainable: nn.Sequential, key: str):
        super().__init__()
        self.frozen, self.trainable = frozen.requires_grad_(False), trainable
        self.key = key  # names the frozen part's cached outputs
        self.inputs: dict[str, torch.Tensor] = {}  # the trainable part's inputs per image set, once loaded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trainable(self.frozen(x))

    def train(self, mode: bool = True) -> "TransferNet":
        super().train(mode)
        self.frozen.eval()
        return self

    # the trainable part's, whichever of torch's overloads is called (the ignore: one signature cannot match them)
    def state_dict(self, *args, **kwargs) -> dict:  # type: ignore[override]
        return self.trainable.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        return self.trainable.load_state_dict(state_dict, strict, assign)


def make_model(config: dict, n_classes: int, data_root: Path | None = None) -> TransferNet:
    pretrained = config["freeze"] != "scratch"
    backbone = backbones.load_backbone(config["backbone"], pretrained, config["input_size"], data_root)
    size = backbone.size or config["input_size"]
    features = nn.Sequential(Prep(size, backbone.channels, backbone.mean, backbone.std), backbone.prefix, backbone.last)
    with torch.no_grad():
        width = features.eval()(torch.zeros(1, 1, size, size)).shape[1]
    stages = [*features, nn.Linear(width, n_classes)]
    cut = FROZEN_PARTS[config["freeze"]]
    key = f"{config['backbone']}-{config['freeze']}-{size}px"
    return TransferNet(nn.Sequential(*stages[:cut]), nn.Sequential(*stages[cut:]), key)


def build(config: dict, data: Data) -> dict:
    common.check_choice(config, "backbone", backbones.names())
    common.check_choices(config, CHOICES)
    model = make_model(config, len(data.classes), data.root).to(data.device)
    optimizer = common.make_optimizer(config, model.trainable.parameters())
    scheduler = common.make_scheduler(config, optimizer, len(data.splits["train"][1]))
    return {"model": model, "optimizer": optimizer, "scheduler": scheduler}


def prepare(values: dict[str, list], data_dir: Path) -> tuple[str, ...]:
    """Before a search: every backbone it may try is known and there (pretrained weights found or downloaded,
    tunelab's MNIST CNN trained), so that a missing download is one clear error rather than failed trials. Returns
    the data sets the pretrained backbones read (MNIST for mnist_cnn)."""
    known = backbones.names()
    wrong = [v for v in values["backbone"] if v not in known]
    if wrong:
        raise UserError(f"backbone {', '.join(map(repr, wrong))} is not allowed; allowed: {', '.join(known)}")
    if set(values["freeze"]) == {"scratch"}:
        return ()
    for name in values["backbone"]:
        backbones.load_backbone(name, True, 32, data_dir)
    return tuple(backbones.PRETRAINED_ON[n] for n in values["backbone"] if n in backbones.PRETRAINED_ON)


def _batch_size(model: TransferNet) -> int:
    """Images per forward pass without gradients: fewer for large inputs."""
    size = next((m.size for m in model.modules() if isinstance(m, Prep)), 224)
    return max(16, 2**21 // size**2)


@torch.no_grad()
def _forward(module: nn.Module, x: torch.Tensor, batch: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    module.eval()
    return torch.cat([module(_as_float(xb)).to(dtype) for xb in x.split(batch)])


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 1], cached features as float32."""
    return common.to_float(x) if x.dtype == torch.uint8 else x.float()


def _inputs(model: TransferNet, x: torch.Tensor) -> torch.Tensor:
    """What the trainable part takes for images ``x``: the frozen part's outputs (cached), or the images."""
    if not len(model.frozen):
        return x
    digest = hashlib.blake2b(x.contiguous().cpu().numpy().data, digest_size=8).hexdigest()  # .data: its bytes
    key = f"features/{model.key}-{digest}"
    if key not in model.inputs:
        computed = cache.cached(key, lambda: {"x": _forward(model.frozen, x, _batch_size(model), torch.float16).cpu()})
        model.inputs[key] = computed["x"].to(x.device)
    return model.inputs[key]


def predict(model: TransferNet, x: torch.Tensor) -> torch.Tensor:
    """Logits for uint8 images ``x``."""
    return _forward(model.trainable, _inputs(model, x), _batch_size(model))


def _augmented(model: TransferNet, inputs: torch.Tensor, config: dict) -> torch.Tensor:
    """A training batch as floats, augmented when the trainable part takes images (a frozen part's cached
    features are the same every epoch, so there is nothing to augment)."""
    if len(model.frozen):
        return _as_float(inputs)
    return common.augment(_as_float(inputs), config["augment"], config["crop_pad"])


def class_weights(y: torch.Tensor, n_classes: int, power: float) -> torch.Tensor:
    counts = torch.bincount(y, minlength=n_classes).clamp(min=1).float()
    return (len(y) / (n_classes * counts)) ** power


def train_epoch(parts: dict, data: Data, config: dict) -> dict[str, float]:
    model = parts["model"]
    x, y = data.splits["train"]
    inputs = _inputs(model, x)
    weight = class_weights(y, len(data.classes), config["class_weight"])
    model.train()
    return common.classifier_epoch(
        y, config["batch_size"], lambda idx: model.trainable(_augmented(model, inputs[idx], config)),
        lambda logits, labels: F.cross_entropy(logits, labels, weight=weight), parts["optimizer"], parts["scheduler"],
    )  # fmt: skip


def outputs(parts: dict, data: Data, split: str) -> torch.Tensor:
    """The logits of a split's images."""
    return predict(parts["model"], data.splits[split][0])


def evaluate(parts: dict, data: Data, split: str) -> dict[str, float]:
    return metrics(outputs(parts, data, split), data, split)


def predict_proba(parts: dict, data: Data, split: str) -> tuple:
    """The class probabilities (softmax of the logits) of a split's images and their labels, as numpy arrays."""
    return outputs(parts, data, split).softmax(1).cpu().numpy(), data.splits[split][1].cpu().numpy()


def metrics(logits: torch.Tensor, data: Data, split: str, config: dict | None = None) -> dict[str, float]:
    """Loss and accuracy of ``logits`` for the split's labels; with two classes also sensitivity, specificity,
    balanced accuracy and ROC-AUC (whatever the model's config)."""
    from sklearn.metrics import roc_auc_score

    y = data.splits[split][1]
    pred = logits.argmax(1)
    result = {"loss": F.cross_entropy(logits, y).item(), "acc": (pred == y).float().mean().item()}
    positive = y == 1
    if len(data.classes) == 2 and 0 < positive.sum() < len(y):
        sensitivity = (pred[positive] == 1).float().mean().item()
        specificity = (pred[~positive] == 0).float().mean().item()
        margin = logits[:, 1] - logits[:, 0]
        result |= {
            "sensitivity": sensitivity,
            "specificity": specificity,
            "balanced_acc": (sensitivity + specificity) / 2,
            "auc": float(roc_auc_score(positive.cpu().numpy(), margin.cpu().numpy())),
        }
    return result


ensemble = common.softmax_ensemble


def _split_labels(data: Data) -> dict[str, torch.Tensor]:
    """Labels of train, validation and test (retraining joins train and validation: the search's split says which)."""
    labels = {split: y for split, (_, y) in data.splits.items()}
    if "val" not in labels and data.root is not None:
        from tunelab.data import load_dataset

        search = load_dataset(data.name, data.root, "search")
        labels = {"train": search.splits["train"][1], "val": search.splits["val"][1], "test": labels["test"]}
    return labels


def figures(parts: dict, data: Data, outdir: Path) -> dict[str, Path]:
    from matplotlib.figure import Figure

    outdir = Path(outdir)
    y = data.splits["test"][1]
    logits = outputs(parts, data, "test")
    scores = metrics(logits, data, "test")
    p, y_np = logits.double().softmax(1).cpu().numpy(), y.cpu().numpy()  # probabilities rank as the logits do
    written = {}

    note = ""
    if "sensitivity" in scores:
        note = f"sensitivity {scores['sensitivity']:.2%}, specificity {scores['specificity']:.2%}"
    written["Confusion matrix of the test set"] = plots.confusion_figure(
        y_np, p.argmax(1), data.classes, outdir / "confusion_matrix.png", "Test set", note
    )
    if "auc" in scores:
        title = "ROC curve on the test set"
        roc = plots.roc_figure({"the model": (p, y_np)}, data.classes, outdir / "roc_curve.png", title, decisions=True)
        written["ROC curve of the test set (the dot: the model's decisions)"] = roc

    labels = _split_labels(data)
    fig = Figure(figsize=(2 + 1.6 * len(labels), 3.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(data.classes)
    for c, name in enumerate(data.classes):
        counts = [int((y_split == c).sum()) for y_split in labels.values()]
        offset = (c - (len(data.classes) - 1) / 2) * width
        bars = ax.bar([i + offset for i in range(len(labels))], counts, width, label=name)
        if len(data.classes) <= 4:  # more would crowd the bars
            ax.bar_label(bars, [f"{n / max(1, len(y_split)):.0%}" for n, y_split in zip(counts, labels.values())])
    ax.set_xticks(range(len(labels)), [f"{split}\n({len(y_split)} images)" for split, y_split in labels.items()])
    labelled = " (labels: share of the split)" if len(data.classes) <= 4 else ""
    ax.set(ylabel="images", title="Class balance of each split" + labelled)
    ax.legend(fontsize=8, ncols=2 if len(data.classes) > 4 else 1)
    written["Class balance of each split"] = outdir / "class_balance.png"
    fig.savefig(outdir / "class_balance.png", dpi=120)
    return written
