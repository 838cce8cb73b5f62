"""What the autoencoders share: the model wrapper, per-pixel metrics, the epoch loop, evaluation, the
figure of test images above their reconstructions, and ``reconstruct``.

An ``AutoEncoder`` maps images in [0, 1] to reconstruction logits: the output sigmoid lives in the loss
(BCE with logits) for stability. It may also carry a classifier that reads only the code, trained on
``(1 - class_weight) * reconstruction loss + class_weight * cross-entropy`` (the multi-task autoencoder).
Pixel accuracy is the share of output pixels equal to the input pixels once both are rounded to 0 or 1.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainables import common
from tunelab import figures as plots
from tunelab.data import Data

LOSSES = ("bce", "mse")
# an autoencoder's METRICS (tunelab.trainable.protocol): batch_metrics' of the validation split and of training
METRICS = ("val_loss", "val_mse", "val_bce", "val_pixel_acc", "train_loss", "train_mse", "train_bce", "train_pixel_acc")


class AutoEncoder(nn.Module):
    """Encoder and decoder, the reconstruction loss they train with, and an optional classifier of the code."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, loss: str, classifier: nn.Module | None = None,
                 class_weight: float = 0.0):  # fmt: skip
        super().__init__()
        self.encoder, self.decoder, self.classifier = encoder, decoder, classifier
        self.loss, self.class_weight = loss, class_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def batch_metrics(model: AutoEncoder, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Means over a batch of uint8 images: mse, bce, pixel_acc (and acc, class_loss with a classifier);
    "loss" is what training minimises."""
    x = common.to_float(images)
    code = model.encoder(x)
    logits = model.decoder(code)
    p = torch.sigmoid(logits)
    m = {"mse": F.mse_loss(p, x), "bce": F.binary_cross_entropy_with_logits(logits, x),
         "pixel_acc": (p.round() == x.round()).float().mean()}  # fmt: skip
    m["loss"] = m[model.loss]
    if model.classifier is not None:
        class_logits = model.classifier(code)
        m["class_loss"] = F.cross_entropy(class_logits, labels)
        m["acc"] = (class_logits.argmax(1) == labels).float().mean()
        m["loss"] = (1 - model.class_weight) * m["loss"] + model.class_weight * m["class_loss"]
    return m


def training_parts(model: AutoEncoder, config: dict, n_train: int) -> dict:
    """The parts of ``build``: the model, its optimizer and LR schedule."""
    common.check_choice(config, "loss", LOSSES)
    optimizer = common.make_optimizer(config, model.parameters())
    return {"model": model, "optimizer": optimizer, "scheduler": common.make_scheduler(config, optimizer, n_train)}


def train_epoch(parts: dict, data: Data, config: dict) -> dict[str, float]:
    model, optimizer, scheduler = parts["model"], parts["optimizer"], parts["scheduler"]
    x, y = data.splits["train"]
    model.train()
    sums: dict[str, torch.Tensor] = {}
    for idx in common.batches(len(x), config["batch_size"], data.device):
        m = batch_metrics(model, x[idx], y[idx])
        optimizer.zero_grad(set_to_none=True)
        m["loss"].backward()
        optimizer.step()
        scheduler.step()
        for k, v in m.items():
            sums[k] = sums.get(k, 0) + v.detach() * len(idx)
    return {k: v.item() / len(x) for k, v in sums.items()}


@torch.no_grad()
def evaluate(parts: dict, data: Data, split: str) -> dict[str, float]:
    model = parts["model"]
    x, y = data.splits[split]
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    for xb, yb in zip(x.split(common.EVAL_BATCH), y.split(common.EVAL_BATCH)):
        for k, v in batch_metrics(model, xb, yb).items():
            sums[k] = sums.get(k, 0) + v * len(xb)
    return {k: v.item() / len(x) for k, v in sums.items()}


def reconstruct(model: AutoEncoder, images: torch.Tensor) -> torch.Tensor:
    """Reconstructions in [0, 1] of uint8 images (the autoencoders' ``reconstruct`` hook: ``tunelab.report.comparison``
    sets several runs' reconstructions of the same test images side by side)."""
    return torch.sigmoid(common.predict(model, images))


def figures(parts: dict, data: Data, outdir: Path) -> dict[str, Path]:
    x, _ = plots.shown_images(data)
    accuracy = evaluate(parts, data, "test")["pixel_acc"]
    path = plots.image_rows(
        {"input": common.to_float(x), "reconstruction": reconstruct(parts["model"], x)},
        Path(outdir) / "reconstructions.png",
        f"Pixel accuracy on the test set: {accuracy:.4f}",
    )
    return {"Randomly chosen test images (top) and their reconstructions (bottom)": path}
