import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from tunelab.data import locate
from tunelab.data.idx import write_idx

REPO = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory) -> Path:
    """A data root with generated Fashion-MNIST and MNIST files in their own format."""
    root = tmp_path_factory.mktemp("data")
    write_mnist_like(root / "fashion-mnist")
    write_mnist_like(root / "mnist", seed=1)
    return root


@pytest.fixture(scope="session")
def fashion_root(fixture_root) -> Path:
    """The real Fashion-MNIST when TUNELAB_DATA has it (CI points it at the shared copies), else the fixture."""
    real = os.environ.get("TUNELAB_DATA")
    if real and locate("fashion_mnist", Path(real)) == Path(real) / "fashion-mnist":
        return Path(real)
    return fixture_root


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory) -> Path:
    """One cache for the whole session, so weights tunelab pretrains are computed once per test run."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def isolated_cache(monkeypatch, cache_root):
    """Every test caches what tunelab computes once (pretrained weights, Fréchet classifiers) in the
    session's cache, never in the user's."""
    monkeypatch.setenv("TUNELAB_CACHE", str(cache_root))


@pytest.fixture(scope="session", autouse=True)
def home(tmp_path_factory) -> Path:
    """One home for the whole session: no ~/.netrc, so W&B has no key; and one ~/.ray/auth_token, which Ray
    reads once per process and which every Ray the session starts (local or a test cluster) must share."""
    path = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(path))
        yield path


@pytest.fixture
def env(tmp_path, monkeypatch):
    """An isolated environment for the CLI: no W&B key, results in tmp_path, no local copies."""
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "TUNELAB_LOCAL_COPIES", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TUNELAB_RESULTS", str(tmp_path / "results"))
    return tmp_path


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
