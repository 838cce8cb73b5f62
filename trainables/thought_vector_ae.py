"""The "thought vector" autoencoder (assignment 2: the fastest, smallest and best autoencoder of MNIST).

A fully connected autoencoder (``trainables.mlp_autoencoder``) whose code, the thought vector, is 256 tanh
units; the output sigmoid lives in the loss. Its metric is pixel accuracy, the share of output pixels equal
to the input pixels once both are rounded (0.97 is good; the aim is 0.98). Its experiment weighs that
against parameter count and training time. The figures add a t-SNE map of the thought vectors.
"""

from pathlib import Path

from trainables import common, mlp_autoencoder, reconstruction
from trainables.mlp_autoencoder import build  # noqa: F401 (shared)
from trainables.reconstruction import evaluate, reconstruct, train_epoch  # noqa: F401 (shared)
from tunelab import figures as plots
from tunelab.data import Data

DATASET = "mnist"
METRIC = "val_pixel_acc"
MODE = "max"

DEFAULTS: dict[str, int | float | bool | str] = mlp_autoencoder.DEFAULTS | {  # the others are documented there
    "hidden": 0,  # no hidden layer: 784 -> 256 -> 784
    "code": 256,  # units of the thought vector
    "code_activation": "tanh",  # the thought vector's activation
    "lr": 3e-3,  # peak learning rate (Adam)
    "schedule": "cosine",  # LR schedule per batch: constant, cosine, step or onecycle
}

TSNE_POINTS = 1500  # test images in the t-SNE map
CHOICES = mlp_autoencoder.CHOICES
RANGES = mlp_autoencoder.RANGES
METRICS = reconstruction.METRICS


def tsne_map(parts: dict, data: Data, path: Path) -> Path:
    """A t-SNE map of the thought vectors of randomly chosen test images, coloured by their class."""
    x, y = plots.shown_images(data, TSNE_POINTS)
    codes = common.predict(parts["model"].encoder, x).flatten(1).cpu().numpy()
    title = f"t-SNE of the {codes.shape[1]}-unit thought vectors of {len(x)} test images"
    return plots.tsne_figure(codes, y.cpu().numpy(), data.classes, path, title)


def figures(parts: dict, data: Data, outdir: Path) -> dict[str, Path]:
    tsne = tsne_map(parts, data, Path(outdir) / "thought_vectors_tsne.png")
    caption = "Thought vectors of test images (t-SNE), coloured by class"
    return reconstruction.figures(parts, data, outdir) | {caption: tsne}
