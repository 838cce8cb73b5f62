"""Data sets: where to find them, how to fetch them, and how a trial gets them as device tensors.

A data set is looked for, in order, in the data root (``--data-dir``, ``TUNELAB_DATA`` or ``./datasets``),
in known local copies (system packages, and the folders in ``TUNELAB_LOCAL_COPIES``), and, by
``tunelab data fetch`` only, at its official download address.

May import: the errors, files and cache of tunelab (a base piece: every stage may import it).
"""

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from tunelab.data.sources import IMAGE_SOURCES, SPLIT_SEED, Source
from tunelab.data.text import TEXT_SOURCES
from tunelab.errors import DamagedFile, UserError

SOURCES: dict[str, Source] = IMAGE_SOURCES | TEXT_SOURCES  # every data set tunelab knows, by name
VAL_FRACTION = 0.1  # share of the training set held out as the fixed validation slice (drawn with SPLIT_SEED)


@dataclass
class Data:
    """A data set's splits on one device: inputs are images as uint8 tensors (N, C, H, W) or texts as an
    array of str (tokenised by the trainable, whose config says how); labels are int64 classes (N,) or soft
    float32 labels (N, K). Besides train, val and test, a data set may have more test splits (test_<name>)."""

    name: str
    splits: dict[str, tuple[torch.Tensor, torch.Tensor]]
    classes: list[str]
    device: torch.device
    root: Path | None = None  # the data root it was loaded from (a trainable may load another data set there)

    @property
    def test_splits(self) -> list[str]:
        """test and any test_<name>."""
        return [split for split in self.splits if split.startswith("test")]


def data_root(cli_value: str | None = None) -> Path:
    return Path(cli_value or os.environ.get("TUNELAB_DATA") or "datasets")


def source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise UserError(f"unknown data set {name!r}; known: {', '.join(sorted(SOURCES))}") from None


def other_kind(name: str, trainables_own: str) -> str | None:
    """Why data set ``name`` does not suit a trainable whose own data set is ``trainables_own`` (one of images, the
    other of texts), or None where both are of one kind."""
    kinds = {"image": set(IMAGE_SOURCES), "text": set(TEXT_SOURCES)}
    kind, own = (next((k for k, names in kinds.items() if n in names), None) for n in (name, trainables_own))
    if kind is None or own is None or kind == own:
        return None
    return f"{name!r} is a data set of {kind}s, and the trainable trains on {own}s ({', '.join(sorted(kinds[own]))})"


def candidate_dirs(name: str, root: Path) -> list[Path]:
    """Folders that may hold the data set's files, in the order they are tried."""
    src = source(name)
    copies = [Path(p) for p in os.environ.get("TUNELAB_LOCAL_COPIES", "").split(os.pathsep) if p]
    return [root / src.folder, *src.system_copies, *(c / src.folder for c in copies)]


def locate(name: str, root: Path) -> Path | None:
    """The first folder holding all of the data set's files, or None."""
    src = source(name)
    return next((d for d in candidate_dirs(name, root) if src.present(d)), None)


def require(name: str, root: Path) -> Path:
    """Like ``locate``, but a missing data set is an error that says where we looked and how to get it."""
    found = locate(name, root)
    if found is None:
        src = source(name)
        looked = "\n".join(f"  {d}" for d in candidate_dirs(name, root))
        raise UserError(
            f"data set {name!r} not found. Looked for {', '.join(src.files)} in:\n{looked}\n"
            f"Get it with {src.how_to_get(name)}, or set TUNELAB_DATA to a folder that holds {src.folder}/."
        )
    return found


def fetch(name: str, root: Path) -> Path:
    """Make the data set available under the data root: copy a local copy or download, verify content."""
    src = source(name)
    target = root / src.folder
    if locate(name, root) == target:
        return target
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write the data root {root}: {e.strerror}") from None
    errors = []
    for f in src.files:
        if (target / f).is_file():
            continue
        local = next((d / f for d in candidate_dirs(name, root)[1:] if (d / f).is_file()), None)
        errors += src.get(f, local, target / f)
    if errors:
        raise UserError(f"could not fetch {name!r}:\n  " + "\n  ".join(dict.fromkeys(errors)) + f"\n{src.hint}.")
    return target


def check(name: str, root: Path) -> None:
    """Read the data set once, so that a missing or corrupt file is reported before a search starts."""
    read(name, root)


def read(name: str, root: Path) -> dict[str, np.ndarray]:
    """The data set's arrays as its source reads them (cached per process), or as the driver shipped them."""
    if name in _shipped:
        return _shipped[name]
    return _arrays(name, require(name, root))


_shipped: dict[str, dict[str, np.ndarray]] = {}  # data sets a cluster's driver shipped to this worker, by name


def use_shipped(arrays: dict[str, dict[str, np.ndarray]]) -> None:
    """Read the data sets in ``arrays`` (name -> arrays as ``read`` returned them on a Ray cluster's driver) from there
    in this process, whatever root a reader names: the worker node need not have the driver's data root."""
    for name, shipped in arrays.items():
        if name not in _shipped:  # Ray's object store hands out read-only arrays: one writable copy per process
            _shipped[name] = {k: np.array(v) for k, v in shipped.items()}


def _train_val(arrays: dict[str, np.ndarray]) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The data set's own validation split when it has one, else a fixed seeded slice of train."""
    x, y = arrays["train_x"], arrays["train_y"]
    if "val_x" in arrays:
        return (x, y), (arrays["val_x"], arrays["val_y"])
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    n_val = int(len(y) * VAL_FRACTION)
    return (x[order[n_val:]], y[order[n_val:]]), (x[order[:n_val]], y[order[:n_val]])


@lru_cache(maxsize=4)
def _arrays(name: str, folder: Path) -> dict[str, np.ndarray]:
    src = source(name)
    try:
        return src.read(folder)
    except DamagedFile as e:  # the reader names the file; the data set says where a good copy comes from
        raise UserError(f"{e}; delete it and get a good copy: {src.how_to_get(name)}") from None


def forget() -> None:
    """Drop the arrays ``read`` keeps per process, so that the next read reads the files again (after they
    changed on disk, or to time a cold read)."""
    _arrays.cache_clear()


def load_dataset(
    name: str,
    root: Path,
    purpose: str = "search",
    subset: float = 1.0,
    device: torch.device | str = "cpu",
) -> Data:
    """The data set for a search (train and validation) or for a retrain and report (train and validation
    together, and the official test set). ``subset`` cuts train and validation to a fraction (smoke runs);
    the test set is always whole."""
    arrays = read(name, root)
    train, val = _train_val(arrays)
    if purpose == "search":
        splits = {"train": train, "val": val}
    elif purpose == "retrain":
        x, y = (np.concatenate(pair) for pair in zip(train, val))
        tests = [k.removesuffix("_x") for k in arrays if k.startswith("test") and k.endswith("_x")]
        splits = {"train": (x, y)} | {t: (arrays[f"{t}_x"], arrays[f"{t}_y"]) for t in tests}
    else:
        raise ValueError(f"purpose must be 'search' or 'retrain', not {purpose!r}")
    device = torch.device(device)

    def tensors(xs: np.ndarray, ys: np.ndarray, fraction: float) -> tuple:
        n = max(1, int(len(ys) * fraction))
        y = torch.from_numpy(ys[:n]).to(device)
        texts = xs.dtype == object  # strings until a trainable tokenises them
        return xs[:n] if texts else torch.from_numpy(xs[:n]).to(device), y if y.is_floating_point() else y.long()

    return Data(
        name,
        {k: tensors(*v, 1.0 if k.startswith("test") else subset) for k, v in splits.items()},
        source(name).classes,
        device,
        root,
    )
