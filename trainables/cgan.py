"""The conditional GAN: ``gan``'s networks and objectives, with the class label conditioning both networks.

Its evaluation adds ``class_acc``: the share of generated images that the Fréchet classifier assigns to the
class they were generated for, beside ``class_acc_real``, its accuracy on the real images. The report
draws one row of samples per class; ``sample``'s labels cycle through the classes, so that ``tunelab
compare`` (and ``fashion_cgan``'s ``compare_with: [fashion_gan]``) shows a column per class beside a GAN's.
"""

from pathlib import Path

import torch

from trainables import gan
from tunelab.data import Data

DATASET = gan.DATASET
METRIC = gan.METRIC
MODE = gan.MODE
DEFAULTS = gan.DEFAULTS
CHOICES = gan.CHOICES
RANGES = gan.RANGES
METRICS = (*gan.METRICS, "val_class_acc", "val_class_acc_real")  # and the classifier's accuracy on its samples
PER_CLASS = 8  # samples per class in the report's grid

train_epoch = gan.train_epoch
evaluate = gan.evaluate
example_input = gan.example_input


def build(config: dict, data: Data) -> dict:
    return gan.make_parts(config, data, n_classes=len(data.classes))


def sample(model: gan.GAN, n: int, seed: int) -> torch.Tensor:
    """n generated images in [0, 1] from seeded z, image i of class i modulo the number of classes: in a grid a
    row of that many wide, a column per class."""
    labels = torch.arange(n, device=next(model.parameters()).device) % model.n_classes
    return model.sample(n, labels, seed=seed)


def figures(parts: dict, data: Data, outdir: Path) -> dict[str, Path]:
    # plotting libraries load only for the report, not in every trial worker
    from matplotlib.figure import Figure

    from tunelab import figures as plots

    n_classes = len(data.classes)
    labels = torch.arange(n_classes, device=data.device).repeat_interleave(PER_CLASS)
    fig = Figure(figsize=(7, 8.5), layout="constrained")
    ax = fig.subplots()
    plots.show_grid(ax, parts["model"].sample(len(labels), labels, seed=1), PER_CLASS, "cGAN: one row per class")
    step = data.splits["test"][0].shape[2] + 2  # a grid row's height in px: image and frame
    ax.set_yticks([step * (i + 0.5) for i in range(n_classes)], data.classes)
    path = Path(outdir) / "class_samples.png"
    fig.savefig(path, dpi=110)
    return {"cGAN samples, one row per class": path}
