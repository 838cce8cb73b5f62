"""Tiny text data sets written in the published formats (Kaggle's weather train.csv, Sentiment140's CSVs,
IMDb's aclImdb/ layout), whose labels a model can learn from the words."""

import csv
import gzip
import io
import tarfile
from pathlib import Path

import numpy as np

KIND_WORDS = {10: "rain umbrella wet", 13: "sunny sunshine bright", 2: "cold freezing chilly", 15: "windy gusts breeze"}
FILLER = "today the weather in town is really going to be what we get this afternoon".split()


def _quoted_csv(rows: list[list]) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return out.getvalue().removesuffix("\n")  # the published files have no trailing newline


def write_weather(folder: Path, n: int = 300, seed: int = 0, name: str = "train.csv.gz") -> Path:
    """Kaggle's train.csv: id, tweet, state, location, s1..s5, w1..w4, k1..k15 (k: soft labels)."""
    rng = np.random.default_rng(seed)
    header = ["id", "tweet", "state", "location", *(f"s{i}" for i in range(1, 6)), *(f"w{i}" for i in range(1, 5)),
              *(f"k{i}" for i in range(1, 16))]  # fmt: skip
    rows = [header]
    for i in range(n):
        kind = list(KIND_WORDS)[i % len(KIND_WORDS)]
        words = [*rng.choice(FILLER, 6), rng.choice(KIND_WORDS[kind].split()), "@mention", "{link}"]
        k = np.zeros(15)
        k[kind - 1] = rng.choice([1.0, 0.8, 0.6])
        k[6] = 1 - k[kind - 1]  # the rest: "I can't tell"
        s, w = np.eye(5)[i % 5], np.eye(4)[i % 4]
        rows.append([i + 1, " ".join(rng.permutation(words)), "texas", "", *s, *w, *k.round(3)])
    folder.mkdir(parents=True, exist_ok=True)
    data = _quoted_csv(rows).encode()
    (folder / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return folder


def _tweets(rng, n: int, start_id: int) -> list[list]:
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        word = rng.choice(["love", "great", "happy", "café was lovely"] if positive else ["hate", "awful", "sad", "worst"])
        text = f"@friend {word} {' '.join(rng.choice(FILLER, 5))} http://t.co/x{i} &amp; sooooo"
        rows.append([4 if positive else 0, start_id + i, "Mon Apr 06 22:19:45 PDT 2009", "NO_QUERY", f"user{i}", text])
    return rows


def write_sentiment140(folder: Path, n: int = 400, seed: int = 0) -> Path:
    """training.1600000.processed.noemoticon.csv(.gz) and testdata.manual.2009.06.14.csv: 6 columns, latin-1."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    train = _quoted_csv(_tweets(rng, n, 1467810369)).encode("latin-1")
    (folder / "training.1600000.processed.noemoticon.csv.gz").write_bytes(gzip.compress(train))
    manual = _tweets(rng, 30, 3)
    for row in manual[::3]:
        row[0] = 2  # neutral
    (folder / "testdata.manual.2009.06.14.csv").write_bytes(_quoted_csv(manual).encode("latin-1"))
    return folder


def imdb_reviews(n_per_class: int = 40, seed: int = 0) -> dict[str, bytes]:
    """aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt -> review bytes."""
    rng = np.random.default_rng(seed)
    files = {"aclImdb/README": b"Large Movie Review Dataset v1.0\n"}
    for split in ("train", "test"):
        for label, words, ratings in (("pos", ["wonderful", "superb", "moving"], [7, 8, 10]), ("neg", ["dull", "boring", "awful"], [1, 2, 4])):
            for i in range(n_per_class):
                text = f"This film was {rng.choice(words)}.<br /><br />{' '.join(rng.choice(FILLER, 20))}"
                files[f"aclImdb/{split}/{label}/{i}_{rng.choice(ratings)}.txt"] = text.encode()
    return files


def write_imdb(folder: Path, archive: bool = True, n_per_class: int = 40) -> Path:
    """The aclImdb_v1.tar.gz archive, or the aclImdb/ folder it unpacks to."""
    folder.mkdir(parents=True, exist_ok=True)
    files = imdb_reviews(n_per_class)
    if archive:
        with tarfile.open(folder / "aclImdb_v1.tar.gz", "w:gz") as tar:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    else:
        for name, content in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
    return folder


def write_text_data(root: Path) -> Path:
    write_weather(root / "crowdflower-weather-twitter")
    write_sentiment140(root / "sentiment140")
    write_imdb(root / "imdb")
    return root
