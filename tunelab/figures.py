"""The figures that several models and the report share: a t-SNE map, a confusion matrix, ROC curves, and grids
of images (test images above their reconstructions, samples of generative models).

Each takes numpy arrays (images: tensors) and writes a PNG (or draws on an Axes, for a figure made of several), on
a ``matplotlib.figure.Figure`` (no pyplot state). ROC curves come with the columns they are drawn for and their
AUCs (``roc_columns``, ``aucs``), which the text models' metrics also report. matplotlib, scikit-learn and
torchvision load inside the functions: a trial worker that imports a trainable does not load them.
"""

import math
from pathlib import Path

import numpy as np
import torch

from tunelab.data import Data

DPI = 110
SHOWN = 10  # test images in the reconstruction figures


def scatter_by_class(ax, points: np.ndarray, labels: np.ndarray, classes: list[str], title: str) -> None:
    """2-D ``points`` (N x 2) on ``ax``, a colour per class of ``labels`` (N class indices), with a legend."""
    from matplotlib import colormaps

    colours = colormaps["tab10" if len(classes) <= 10 else "tab20"]  # a colour per class, whatever the style
    for c, name in enumerate(classes):
        at = labels == c
        ax.scatter(points[at, 0], points[at, 1], s=5, alpha=0.7, color=colours(c % colours.N), label=name)
    ax.legend(markerscale=3, fontsize=8, loc="best")
    ax.set_title(title)


def tsne_figure(features: np.ndarray, labels: np.ndarray, classes: list[str], path: Path, title: str) -> Path:
    """A t-SNE map (scikit-learn's, seeded) of ``features`` (N x d), coloured by class."""
    from matplotlib.figure import Figure
    from sklearn.manifold import TSNE

    perplexity = min(30.0, (len(features) - 1) / 3)
    points = TSNE(perplexity=perplexity, init="pca", random_state=0).fit_transform(features)
    fig = Figure(figsize=(8, 7), layout="constrained")
    ax = fig.subplots()
    scatter_by_class(ax, points, labels, classes, title)
    ax.set(xticks=[], yticks=[])
    fig.savefig(path, dpi=DPI)
    return path


def draw_confusion(ax, matrix: np.ndarray, classes: list[str], title: str, note: str = "") -> None:
    """The confusion matrix ``matrix`` (rows: true class, columns: predicted) on ``ax``; the title gives
    its accuracy, and ``note`` a line below it."""
    from sklearn.metrics import ConfusionMatrixDisplay

    ConfusionMatrixDisplay(matrix, display_labels=classes).plot(ax=ax, colorbar=False, cmap="Blues")
    for label in ax.get_xticklabels():
        label.set(rotation=40, ha="right", rotation_mode="anchor")
    accuracy = matrix.diagonal().sum() / max(matrix.sum(), 1)
    ax.set_title(f"{title}, accuracy {accuracy:.2%}" + (f"\n{note}" if note else ""))


def confusion_figure(
    truth: np.ndarray, predicted: np.ndarray, classes: list[str], path: Path, title: str, note: str = ""
) -> Path:
    """The confusion matrix of class indices ``predicted`` against ``truth`` (see ``draw_confusion``)."""
    from matplotlib.figure import Figure
    from sklearn.metrics import confusion_matrix

    n = len(classes)
    fig = Figure(figsize=(4 + 0.5 * n, 3.5 + 0.4 * n), layout="constrained")
    draw_confusion(fig.subplots(), confusion_matrix(truth, predicted, labels=range(n)), classes, title, note)
    fig.savefig(path, dpi=DPI)
    return path


def roc_columns(p: np.ndarray, y: np.ndarray, classes: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Binary truths, scores and names of the columns a ROC curve is drawn for, from probabilities ``p``
    (N x outputs) and labels ``y``: every kind of a soft label (N x kinds; positive where at least half of the
    annotators chose it), the positive class of two classes, or every class (one-vs-rest) of more."""
    if y.ndim == 2:
        return y >= 0.5, p, classes
    if p.shape[1] == 2:
        return (y == 1)[:, None], p[:, 1:], classes[1:]
    return np.eye(p.shape[1], dtype=bool)[y], p, classes


def aucs(truth: np.ndarray, scores: np.ndarray, names: list[str]) -> dict[str, float]:
    """ROC-AUC per column, and for several columns their mean (macro) and the micro-average; a column
    where only one outcome occurs has no AUC and is left out."""
    from sklearn.metrics import roc_auc_score

    def auc(t: np.ndarray, s: np.ndarray) -> dict:
        return {"auc": float(roc_auc_score(t, s))} if 0 < t.sum() < len(t) else {}

    per = {n: a["auc"] for n, t, s in zip(names, truth.T, scores.T) if (a := auc(t, s))}
    if len(names) > 1:
        per |= {"macro": float(np.mean(list(per.values())))} if per else {}
        per |= {"micro": a["auc"]} if (a := auc(truth.ravel(), scores.ravel())) else {}
    return per


def roc_figure(
    runs: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str], path: Path, title: str, decisions: bool = False
) -> Path:
    """ROC curves of one or more models on the same split, AUCs in the legends: a panel per column of
    ``roc_columns`` (the positive class of two, each class of more, each kind of soft labels) and, with
    several columns, the micro-average. ``runs``: label -> (probabilities N x outputs, labels). ``decisions``
    (class labels): a dot for each model's decisions (its most probable class) in every panel."""
    from matplotlib.figure import Figure
    from sklearn.metrics import auc, roc_curve

    columns = {label: roc_columns(p, y, classes) for label, (p, y) in runs.items()}
    truth, _, names = next(iter(columns.values()))
    # the columns of one-hot decisions: which images each model puts in each panel's positive class
    decided = {label: roc_columns(np.eye(p.shape[1])[p.argmax(1)], y, classes)[1] == 1
               for label, (p, y) in runs.items() if decisions and y.ndim == 1}  # fmt: skip
    panels = [(n, lambda a, i=i: a[:, i]) for i, n in enumerate(names)]
    panels += [("micro-average", np.ravel)] if len(names) > 1 else []
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(max(3.6 * cols, 6), 3.4 * rows + 0.4), layout="constrained")  # room for the title
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (panel, column) in zip(axes, panels):
        t = column(truth)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set_title(f"{panel} ({int(t.sum())}/{len(t)} positive)", fontsize=10)
        ax.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)")
        if not 0 < t.sum() < len(t):
            ax.text(0.5, 0.5, "no ROC: one outcome only", ha="center")
            continue
        for label, (_, scores, _) in columns.items():
            fpr, tpr, _ = roc_curve(t, column(scores))
            (line,) = ax.plot(fpr, tpr, label=f"{label}: AUC {auc(fpr, tpr):.3f}")
            if label in decided:
                chosen = column(decided[label])
                ax.plot(chosen[~t].mean(), chosen[t].mean(), "o", color=line.get_color(), label=f"decisions of {label}")
        ax.legend(fontsize=8, loc="lower right")
    for ax in axes[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=DPI)
    return path


def shown_images(data: Data, k: int = SHOWN, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """k randomly chosen test images and their labels: the same ones for every model and run."""
    x, y = data.splits["test"]
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:k].to(x.device)
    return x[idx], y[idx]


def image_rows(rows: dict[str, torch.Tensor], path: Path, title: str = "") -> Path:
    """A grid of images in [0, 1] (N x C x H x W), one labelled row per entry of ``rows``."""
    from matplotlib.figure import Figure

    n = max(len(images) for images in rows.values())
    fig = Figure(figsize=(1.2 * n + 1, 1.35 * len(rows) + 0.4 * bool(title)), layout="constrained")
    axes = fig.subplots(len(rows), n, squeeze=False)
    for row, (label, images) in zip(axes, rows.items()):
        for ax, image in zip(row, images.cpu().numpy()):
            ax.imshow(image.transpose(1, 2, 0).squeeze(-1), cmap="gray", vmin=0, vmax=1)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100)
    return path


def show_grid(ax, images: torch.Tensor, per_row: int, title: str | None = None) -> None:
    """Draw float images in [0, 1] (N x C x H x W) on a matplotlib axis, per_row to a row, framed in white."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu(), nrow=per_row, padding=2, pad_value=1.0)
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
