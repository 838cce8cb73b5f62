"""Text data sets: weather tweets (soft labels over 15 kinds), Sentiment140 and IMDb movie reviews.

Texts stay strings here: how to tokenise them is part of a trial's config (vocabulary, words or characters,
cleaning), so the trainables build their tokeniser from the training split (``trainables/text.py``).
Each reader returns train_x/val_x/test_x as arrays of str and labels as int64 classes or float32 soft
labels. A copy with fewer rows than the published file is read as it is, with a note that it is a subset.
"""

import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from tunelab.data.sources import SPLIT_SEED, Source
from tunelab.errors import DamagedFile

KINDS = [
    "clouds",
    "cold",
    "dry",
    "hot",
    "humid",
    "hurricane",
    "I can't tell",
    "ice",
    "other",
    "rain",
    "snow",
    "storms",
    "sun",
    "tornado",
    "wind",
]  # fmt: skip  (k1..k15 of the weather tweets)


@dataclass(frozen=True)
class TextSource(Source):
    """A text data set: its files may also come plain, gzipped or zipped (``names``), and it has its own reader."""

    reader: Callable[["TextSource", Path], dict[str, np.ndarray]] = field(kw_only=True)
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)  # each file -> the other names it may have
    soft_labels: bool = False  # labels are float32 N x K (a share per class), not int64 classes

    @property
    def files(self) -> list[str]:
        return list(self.names)

    def path(self, folder: Path, file: str) -> Path | None:
        """Where ``file`` (under any of its names) is in ``folder``, if it is."""
        return next((folder / n for n in (file, *self.names[file]) if (folder / n).exists()), None)

    def found(self, folder: Path, file: str) -> Path:
        """``path``, for a reader of a folder that ``present`` found."""
        path = self.path(folder, file)
        if path is None:
            raise DamagedFile(f"{folder / file}: not found")
        return path

    def present(self, folder: Path) -> bool:
        return all(self.path(folder, f) for f in self.files)

    def read(self, folder: Path) -> dict[str, np.ndarray]:
        return self.reader(self, folder)


def split_60_20_20(strata: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a fixed, seeded 60/20/20 split that keeps each stratum's share in every part."""
    rng = np.random.default_rng(SPLIT_SEED)
    parts: tuple[list, list, list] = ([], [], [])
    for s in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == s))
        for part, chunk in zip(parts, np.split(idx, [round(0.6 * len(idx)), round(0.8 * len(idx))])):
            part.append(chunk)
    train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    return train, val, test


def _note_subset(what: Path | str, rows: int, published: int) -> None:
    if rows < published:
        print(f"note: {what} holds {rows:,} of the {published:,} rows of the published data: a subset", file=sys.stderr)


def _csv(path: Path, **kwargs) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, **kwargs)  # plain, .gz or .zip
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as e:  # pandas' errors are ValueErrors
        raise DamagedFile(f"{path}: cannot read it as CSV ({e})") from None
    if frame.empty:
        raise DamagedFile(f"{path}: no rows (an empty file, or a header alone)")
    return frame


def _split(x: np.ndarray, y: np.ndarray, strata: np.ndarray) -> dict[str, np.ndarray]:
    arrays = {}
    for name, idx in zip(("train", "val", "test"), split_60_20_20(strata)):
        arrays[f"{name}_x"], arrays[f"{name}_y"] = x[idx], y[idx]
    return arrays


def read_weather(src: TextSource, folder: Path) -> dict[str, np.ndarray]:
    """Kaggle's train.csv; k1..k15 (annotators' confidence per kind) are the soft labels. The competition's
    test labels were never released, so the split is tunelab's own: 60/20/20, stratified by the top kind."""
    path = src.found(folder, "train.csv.gz")
    frame = _csv(path)
    columns = ["tweet", *(f"k{i}" for i in range(1, 16))]
    missing = [c for c in columns if c not in frame]
    if missing:
        raise DamagedFile(f"{path}: columns {', '.join(missing)} are missing; expected Kaggle's train.csv "
                          f"(id, tweet, state, location, s1..s5, w1..w4, k1..k15)")  # fmt: skip
    labels = frame[columns[1:]].apply(pd.to_numeric, errors="coerce")
    bad = (~(labels.ge(0) & labels.le(1))).to_numpy()  # NaN, text and shares outside [0, 1]
    if bad.any():
        row, column = np.argwhere(bad)[0]
        name = columns[1 + column]
        value = frame[name].iloc[row]
        shown = "empty" if pd.isna(value) else repr(value.item() if hasattr(value, "item") else value)
        raise DamagedFile(f"{path}: row {row + 1}: soft label {name} is {shown}, not a share in [0, 1] "
                          f"({bad.sum()} such in all)")  # fmt: skip
    _note_subset(path, len(frame), 77_946)
    y = labels.to_numpy(np.float32)
    return _split(frame["tweet"].astype(str).to_numpy(object), y, y.argmax(1))


SENTIMENT140_COLUMNS = ["target", "ids", "date", "flag", "user", "text"]


def _sentiment140(path: Path) -> pd.DataFrame:
    frame = _csv(path, header=None, names=SENTIMENT140_COLUMNS, encoding="latin-1")
    if not frame["target"].isin([0, 2, 4]).all():
        raise DamagedFile(f"{path}: the first column must be the polarity 0, 2 or 4; is this a Sentiment140 file?")
    return frame


def read_sentiment140(src: TextSource, folder: Path) -> dict[str, np.ndarray]:
    """The training file split 60/20/20 stratified by polarity (CSCI 5980 HW5), and the manual test file as
    the extra split test_manual (its neutral tweets dropped). Labels: 0 negative, 1 positive."""
    train = _sentiment140(path := src.found(folder, "training.1600000.processed.noemoticon.csv.gz"))
    _note_subset(path, len(train), 1_600_000)
    manual = _sentiment140(src.found(folder, "testdata.manual.2009.06.14.csv"))
    manual = manual[manual["target"] != 2]
    y = (train["target"].to_numpy() == 4).astype(np.int64)
    arrays = _split(train["text"].astype(str).to_numpy(object), y, y)
    arrays["test_manual_x"] = manual["text"].astype(str).to_numpy(object)
    arrays["test_manual_y"] = (manual["target"].to_numpy() == 4).astype(np.int64)
    return arrays


def read_imdb(src: TextSource, folder: Path) -> dict[str, np.ndarray]:
    """aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt from the archive or the extracted folder."""
    path = src.found(folder, "aclImdb_v1.tar.gz")
    reviews: dict[str, list] = {"train": [], "test": []}  # (file name, text, label)

    def add(name: str, read: Callable[[], bytes]) -> None:
        parts = name.split("/")
        if len(parts) == 4 and parts[1] in reviews and parts[2] in ("pos", "neg") and parts[3].endswith(".txt"):
            reviews[parts[1]].append((name, read().decode("utf-8", "replace"), int(parts[2] == "pos")))

    try:
        if path.is_dir():
            for f in path.glob("*/*/*.txt"):
                add(f"aclImdb/{f.relative_to(path).as_posix()}", f.read_bytes)
        else:
            with tarfile.open(path, "r:*") as tar:
                for member in tar:
                    file = tar.extractfile(member) if member.isfile() else None  # read only if add() keeps it
                    if file is not None:
                        add(member.name.removeprefix("./"), file.read)
    except (OSError, tarfile.TarError, EOFError) as e:
        raise DamagedFile(f"{path}: cannot read it ({e})") from None
    arrays = {}
    for split, rows in reviews.items():
        if not rows:
            raise DamagedFile(f"{path}: no reviews in aclImdb/{split}/pos or aclImdb/{split}/neg")
        _note_subset(f"{path} ({split})", len(rows), 25_000)
        rows.sort()
        arrays[f"{split}_x"] = np.array([r[1] for r in rows], dtype=object)
        arrays[f"{split}_y"] = np.array([r[2] for r in rows], dtype=np.int64)
    return arrays


TEXT_SOURCES: dict[str, TextSource] = {
    "weather_tweets": TextSource(
        folder="crowdflower-weather-twitter",
        urls=(),
        content_sha256={},
        classes=KINDS,
        hint="download train.csv from Kaggle's competition crowdflower-weather-twitter (needs a Kaggle login) "
        "into the folder",
        reader=read_weather,
        names={"train.csv.gz": ("train.csv", "train.csv.zip")},
        soft_labels=True,
    ),
    "sentiment140": TextSource(
        folder="sentiment140",
        urls=(),
        content_sha256={},
        classes=["negative", "positive"],
        hint="download trainingandtestdata.zip from http://help.sentiment140.com/for-students and unzip both "
        "CSV files into the folder",
        reader=read_sentiment140,
        names={
            "training.1600000.processed.noemoticon.csv.gz": ("training.1600000.processed.noemoticon.csv",),
            "testdata.manual.2009.06.14.csv": ("testdata.manual.2009.06.14.csv.gz",),
        },
    ),
    "imdb": TextSource(
        folder="imdb",
        urls=("https://ai.stanford.edu/~amaas/data/sentiment/",),
        content_sha256={},
        classes=["negative", "positive"],
        hint="or put the archive aclImdb_v1.tar.gz, or the folder aclImdb/ it unpacks to, into the folder",
        reader=read_imdb,
        names={"aclImdb_v1.tar.gz": ("aclImdb",)},
    ),
}
