"""Readers for the chest X-ray pneumonia data in its two published forms: MedMNIST's ``pneumoniamnist.npz``
and Kaggle's JPEG folders ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``."""

import hashlib
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from tunelab import cache
from tunelab.errors import DamagedFile

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


def read_medmnist(path: Path, n_classes: int) -> dict[str, np.ndarray]:
    """A MedMNIST .npz (``{train,val,test}_{images,labels}``) as train_x, train_y, val_x, ... (N x 1 x H x W)."""
    try:
        with np.load(path) as npz:
            raw = {k: npz[k] for k in npz.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as e:  # truncated or garbled
        raise DamagedFile(f"{path}: cannot read it ({e})") from None
    arrays = {}
    for split in ("train", "val", "test"):
        x, y = raw.get(f"{split}_images"), raw.get(f"{split}_labels")
        if x is None or y is None or x.ndim != 3 or len(x) != len(y) or y.max(initial=0) >= n_classes:
            raise DamagedFile(f"{path}: {split}_images and {split}_labels are missing or do not match")
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x[:, None], y.reshape(-1)
    return arrays


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_image_folders(folder: Path, classes: list[str], size: int) -> dict[str, np.ndarray]:
    """``<split>/<class>/*.jpeg`` as train_x, train_y, test_x, test_y: grayscale, centre-cropped to a square and
    resized to ``size`` px (as MedMNIST does). Kaggle's val folder (16 images) is added to train, from which
    tunelab holds out its own validation slice. Decoded once and cached with tunelab.cache."""
    listing = {
        split: [(image_files(folder / split / c), i) for i, c in enumerate(classes) if (folder / split / c).is_dir()]
        for split in ("train", "val", "test")
    }
    file_sizes = [(str(p), p.stat().st_size) for files in listing.values() for fs, _ in files for p in fs]
    stamp = hashlib.sha256(repr(file_sizes).encode())

    def decode() -> dict[str, torch.Tensor]:
        out = {}
        for split, files in listing.items():
            images = [_image(p, size) for fs, _ in files for p in fs]
            out[f"{split}_x"] = torch.from_numpy(np.stack(images) if images else np.zeros((0, size, size), np.uint8))
            out[f"{split}_y"] = torch.tensor([i for fs, i in files for _ in fs], dtype=torch.uint8)
        return out

    t = cache.cached(f"images/{folder.name}-{size}px-{stamp.hexdigest()[:16]}", decode)
    arrays = {k: v.numpy() for k, v in t.items()}
    for key in ("x", "y"):  # Kaggle's tiny val split joins train
        arrays[f"train_{key}"] = np.concatenate([arrays[f"train_{key}"], arrays.pop(f"val_{key}")])
    arrays["train_x"], arrays["test_x"] = arrays["train_x"][:, None], arrays["test_x"][:, None]
    return arrays


def _image(path: Path, size: int) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im.draft("L", (size, size))  # JPEG: decode at a reduced scale (much faster for 2000 px X-rays)
            return np.asarray(ImageOps.fit(im.convert("L"), (size, size), Image.Resampling.BILINEAR))
    except OSError as e:  # also PIL's UnidentifiedImageError and truncated files
        raise DamagedFile(f"{path}: cannot read the image ({e})") from None
