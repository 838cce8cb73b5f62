"""Image grids for the report figures of the generative models."""

import torch
from torchvision.utils import make_grid


def show_grid(ax, images: torch.Tensor, per_row: int, title: str | None = None) -> None:
    """Draw float images in [0, 1] (N x C x H x W) on a matplotlib axis, per_row to a row, framed in white."""
    grid = make_grid(images.detach().float().cpu(), nrow=per_row, padding=2, pad_value=1.0)
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
