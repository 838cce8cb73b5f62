"""What more than one test file uses: the repository's root, tiny data sets written in their published formats
(MNIST-like IDX, PneumoniaMNIST's .npz, the text data sets' CSVs and IMDb's aclImdb/ layout), a small variant of
a search space, a run with a retrained model but no search, what a report's figures and a W&B offline run file
hold."""

import csv
import gzip
import io
import json
import re
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import yaml

from tunelab.data.idx import write_idx

REPO = Path(__file__).resolve().parents[1]
# a narrow CNN space that keeps tests fast (not a built-in experiment): its run and Spec.name are "small_cnn"
SMALL_CNN = REPO / "tests" / "spaces" / "small_cnn.yaml"


def report_figures(report_text: str) -> list[str]:
    """The file names of a Markdown report's figures (![alt](name)), in order."""
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report_text)


def variant(tmp_path: Path, experiment: str, **changes) -> str:
    """The experiment's file with some keys replaced: small enough for a test."""
    raw = yaml.safe_load((REPO / "search_spaces" / f"{experiment}.yaml").read_text()) | changes
    path = tmp_path / f"{experiment}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def subset_for(root: Path) -> str:
    """A sliver of the real data, or all of the small generated fixture."""
    folder = root / "fashion-mnist"
    real = len(list(folder.glob("*.gz"))) == 4 and (folder / "train-images-idx3-ubyte.gz").stat().st_size > 10**6
    return "0.03" if real else "1.0"


def retrained_run(results: Path, experiment: str | Path, data_root: Path, **config):
    """A run of ``experiment`` (a name or a file) in ``results``, named as ``tunelab search`` names it, with no
    search, whose best retrained model (rank 1, seed 0) is the untrained model of the experiment's default config
    (``config`` overrides some of it)."""
    from tunelab import data as datasets
    from tunelab.spec import spaces
    from tunelab.store import runs
    from tunelab.trainable import protocol, training

    spec = spaces.load_spec(str(experiment))
    run = runs.StoredRun(results / spec.name, spec, runs.Options(), data_root)
    run.save()
    config = spec.config({}) | config
    data = datasets.load_dataset(spec.dataset, data_root, "retrain", 1.0, training.device())
    parts = training.build(protocol.load_trainable(spec.trainable), config, data, 0)
    run.retrain_dir.mkdir()
    run.save_retrained(1, 0, "untrained", config, 1.0, parts["model"].state_dict())
    return run


def write_mnist_like(folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """A tiny data set in the IDX .gz format: each class is a bright square at its own place, plus noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            r, k = divmod(int(c), 5)
            images[i, 4 + 10 * r : 12 + 10 * r, 1 + 5 * k : 6 + 5 * k] = 230
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


def write_pneumoniamnist(folder: Path, n: int = 40, seed: int = 0) -> Path:
    """A small .npz in MedMNIST's format: (N, 28, 28) uint8 images, (N, 1) labels per split."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, size in (("train", n), ("val", n // 4), ("test", n // 2)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (size, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(size) % 3 == 0).astype(np.uint8)[:, None]  # a third are positive
    np.savez_compressed(folder / "pneumoniamnist.npz", **arrays)
    return folder


# Tiny text data sets written in the published formats (Kaggle's weather train.csv, Sentiment140's CSVs, IMDb's
# aclImdb/ layout), whose labels a model can learn from the words.

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
        words = ["love", "great", "happy", "café was lovely"] if positive else ["hate", "awful", "sad", "worst"]
        word = rng.choice(words)
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
        for label, words, ratings in (
            ("pos", ["wonderful", "superb", "moving"], [7, 8, 10]),
            ("neg", ["dull", "boring", "awful"], [1, 2, 4]),
        ):
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


def wandb_run(path: Path) -> dict:
    """What a W&B offline run file (a LevelDB-style log of protobuf records) holds: the run's group, job type and
    config, and its history rows; every record's checksum is checked, and a corrupt or truncated one fails."""
    from wandb.proto import wandb_internal_pb2

    data, block, header = path.read_bytes(), 32768, 7
    assert data[:7] == struct.pack("<4sHB", b":W&B", 0xBEE1, 0), f"{path}: not a W&B run file"
    run, pos, pending = {"group": None, "job_type": None, "config": {}, "history": []}, 7, b""

    def items(records) -> dict:
        return {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in records}

    while pos < len(data):
        if block - pos % block < header:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        chunk = data[pos + header : pos + header + length]
        assert len(chunk) == length, f"{path}: record at byte {pos} is truncated"
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) == crc, f"{path}: record at byte {pos} is corrupt"
        pos, pending = pos + header + length, pending + chunk
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record.FromString(pending)
            pending = b""
            what = record.WhichOneof("record_type")
            if what == "history":
                run["history"].append(items(record.history.item))
            elif what == "run":
                run |= {"group": record.run.run_group, "job_type": record.run.job_type}
                run["config"] |= items(record.run.config.update)
            elif what == "config":
                run["config"] |= items(record.config.update)
    assert not pending, f"{path}: ends inside a record"
    run["config"] = {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in run["config"].items()}
    return run


STUDENT_MODEL = '''"""A student's own MLP for Fashion-MNIST, outside tunelab (its hidden block is from layers.py)."""

import torch
import torch.nn.functional as F
from torch import nn

from layers import hidden_block

DATASET = "fashion_mnist"
METRIC = "val_acc"
MODE = "max"
DEFAULTS = {
    "hidden": 32,  # width of the hidden layer
    "lr": 0.01,  # Adam's learning rate
    "batch_size": 64,  # images per step
    "epochs": 2,  # set by the harness
}


def build(config, data):
    x, _ = data.splits["train"]
    model = nn.Sequential(nn.Flatten(), *hidden_block(x[0].numel(), config["hidden"]),
                          nn.Linear(config["hidden"], len(data.classes))).to(data.device)
    return {"model": model, "optimizer": torch.optim.Adam(model.parameters(), lr=config["lr"])}


def logits(model, x):
    return model(x.float() / 255)


def train_epoch(parts, data, config):
    model, optimizer = parts["model"], parts["optimizer"]
    x, y = data.splits["train"]
    model.train()
    total = 0.0
    for idx in torch.randperm(len(y), device=y.device).split(config["batch_size"]):
        loss = F.cross_entropy(logits(model, x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
    return {"loss": total / len(y)}


@torch.no_grad()
def evaluate(parts, data, split):
    x, y = data.splits[split]
    out = logits(parts["model"].eval(), x)
    return {"loss": F.cross_entropy(out, y).item(), "acc": (out.argmax(1) == y).float().mean().item()}


@torch.no_grad()
def predict_proba(parts, data, split):
    x, y = data.splits[split]
    return logits(parts["model"].eval(), x).softmax(1).cpu().numpy(), y.cpu().numpy()


def figures(parts, data, outdir):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 3))
    fig.subplots().imshow(parts["model"][1].weight.detach().cpu()[0].reshape(28, 28), cmap="RdBu")
    path = outdir / "first_hidden_unit.png"
    fig.savefig(path)
    return {"The first hidden unit's weights": path}
'''

STUDENT_LAYERS = """from torch import nn


def hidden_block(inputs, width):
    return [nn.Linear(inputs, width), nn.ReLU()]
"""


def write_student_model(folder: Path, sweeps: dict[str, dict]) -> Path:
    """A student's folder: mlp.py (a small MLP, not a copy of a built-in model), the layers.py it imports, and a
    sweep file NAME.yaml of the given parameters for each entry of ``sweeps``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mlp.py").write_text(STUDENT_MODEL)
    (folder / "layers.py").write_text(STUDENT_LAYERS)
    for name, parameters in sweeps.items():
        sweep = {
            "trainable": "mlp.py",
            "method": "random",
            "metric": {"name": "val_acc", "goal": "maximize"},
            "run_cap": 2,
            "max_epochs": 2,
            "parameters": parameters,
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    return folder
