"""Looking inside a trained image classifier, for the report of any classifier experiment.

- t-SNE (scikit-learn) of the penultimate features (the input of the last linear layer: fc1's activations in
  pytorch/examples' network) of a sample of training images, coloured by class;
- activation maximisation: from an empty image, gradient ascent on one class's output (logit), with random
  jitter, Gaussian blur and an L2 penalty as regularisers; one image per class in a grid, beside the test
  set's confusion matrix, with each class's test accuracy.

A model counts as an image classifier when it maps the test images to one output per class. It runs as its
trainable runs it: through the trainable's ``predict`` (the protocol's hook, ``tunelab.trainable.protocol``).
"""

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from tunelab import figures
from tunelab.data import Data

TSNE_SAMPLE = 2000  # training images in the t-SNE plot
AM_STEPS = 300  # gradient-ascent steps of activation maximisation
AM_LR = 0.05  # Adam's step size on the image (pixels in [0, 1])
AM_JITTER = 2  # largest random shift in px before each step
AM_BLUR_EVERY = 4  # blur the image every this many steps
AM_BLUR_SIGMA = 0.5  # px
AM_L2 = 0.01  # penalty on the squared pixel values, per pixel
Predict = Callable[[nn.Module, torch.Tensor], torch.Tensor]  # (model, uint8 images) -> logits, in eval mode


@torch.no_grad()
def penultimate_features(model: nn.Module, x: torch.Tensor, predict: Predict) -> torch.Tensor:
    """The input of the model's last linear layer for uint8 images x (in eval mode), as ``predict`` runs it."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    captured = []
    hook = last.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].flatten(1)))
    try:
        predict(model, x)
    finally:
        hook.remove()
    return torch.cat(captured)


def activation_maximisation(model: nn.Module, shape: tuple, n_classes: int, device: torch.device) -> torch.Tensor:
    """One image per class (n_classes x C x H x W, in [0, 1]) that its class's logit is maximised on."""
    from torchvision.transforms.v2.functional import gaussian_blur

    model.eval()
    image = torch.zeros((n_classes, *shape), device=device, requires_grad=True)  # the empty image
    optimizer = torch.optim.Adam([image], lr=AM_LR)
    classes = torch.arange(n_classes, device=device)
    for step in range(AM_STEPS):
        dy, dx = torch.randint(-AM_JITTER, AM_JITTER + 1, (2,)).tolist()
        logits = model(torch.roll(image, (dy, dx), dims=(2, 3)))
        objective = logits[classes, classes].sum() - AM_L2 * image.pow(2).sum()
        (image.grad,) = torch.autograd.grad(-objective, [image])  # the model's own gradients are untouched
        optimizer.step()
        with torch.no_grad():
            if step % AM_BLUR_EVERY == 0:
                image.copy_(gaussian_blur(image, kernel_size=[3, 3], sigma=[AM_BLUR_SIGMA]))
            image.clamp_(0, 1)
    return image.detach()


def section(model: nn.Module, data: Data, out: Path, predict: Predict) -> list[tuple]:
    """The report's blocks (see tunelab.report.report) for a classifier of uint8 images that ends in a linear layer.
    ``predict``: the trainable's (transfer's reuses the frozen backbone's cached outputs)."""
    from sklearn.metrics import confusion_matrix

    x, y = data.splits["test"]
    logits = predict(model, x)
    matrix = confusion_matrix(y.cpu().numpy(), logits.argmax(1).cpu().numpy(), labels=range(len(data.classes)))
    accuracy = matrix.diagonal() / matrix.sum(1).clip(min=1)
    images = activation_maximisation(model, tuple(x.shape[1:]), len(data.classes), data.device)
    table = pd.DataFrame({"class": data.classes, "test images": matrix.sum(1), "test accuracy": accuracy})
    tsne = _tsne(model, data, out / "tsne.png", predict)
    grid = _am_figure(images, matrix, accuracy, data.classes, out / "activation_maximisation.png")
    sample = min(TSNE_SAMPLE, len(data.splits["train"][1]))
    return [
        ("h3", "Inside the classifier"),
        ("img", f"t-SNE of the penultimate-layer features of {sample} training images, coloured by class", tsne),
        (
            "img",
            "Activation maximisation (one image per class, from an empty image: gradient ascent on the class's "
            "logit with jitter, blur and L2) beside the test confusion matrix; titles give each class's test "
            "accuracy",
            grid,
        ),  # fmt: skip
        ("table", table),
    ]


def _tsne(model: nn.Module, data: Data, path: Path, predict: Predict) -> Path:
    x, y = data.splits["train"]
    pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[:TSNE_SAMPLE].to(x.device)
    features = penultimate_features(model, x[pick], predict).cpu().numpy()
    title = f"t-SNE of {features.shape[1]}-d penultimate features ({len(pick)} training images)"
    return figures.tsne_figure(features, y[pick].cpu().numpy(), data.classes, path, title)


def _am_figure(images: torch.Tensor, matrix, accuracy, classes: list[str], path: Path) -> Path:
    from matplotlib.figure import Figure

    n = len(classes)
    cols = min(n, 5)
    rows = -(-n // cols)
    fig = Figure(figsize=(2.0 * cols + 8, max(2.3 * rows, 7)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[2.0 * cols, 8])  # type: ignore[misc]  # an array of 2
    axes = left.subplots(rows, cols, squeeze=False).flatten()
    for ax in axes:
        ax.axis("off")
    for ax, image, name, acc in zip(axes, images.cpu().numpy(), classes, accuracy):
        ax.imshow(image.transpose(1, 2, 0).squeeze(-1), cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=1)
        ax.set_title(f"{name}\ntest acc {acc:.1%}", fontsize=9)
    left.suptitle("Activation maximisation")
    figures.draw_confusion(right.subplots(), matrix, classes, "Test set")
    fig.savefig(path, dpi=figures.DPI)
    return path
