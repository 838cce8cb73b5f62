"""The chest X-ray data in its two published forms: MedMNIST's pneumoniamnist.npz and Kaggle's JPEG folders."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import write_pneumoniamnist
from tunelab import data
from tunelab.errors import UserError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


# Kaggle's layout, with (normal, pneumonia) images per split: its val split is tiny
KAGGLE_COUNTS = {"train": (4, 8), "val": (1, 1), "test": (3, 4)}


def write_kaggle_chest_xray(folder: Path) -> Path:
    """JPEGs of mixed sizes and modes in chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/, as Kaggle ships them."""
    rng = np.random.default_rng(0)
    for split, counts in KAGGLE_COUNTS.items():
        for label, n in zip(("NORMAL", "PNEUMONIA"), counts):
            (folder / split / label).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = (60, 90) if i % 2 else (80, 50)
                mode = "RGB" if i == 1 else "L"
                pixels = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
                Image.fromarray(pixels, mode).save(folder / split / label / f"person{i}_{label.lower()}.jpeg")
    (folder / "train" / "NORMAL" / ".DS_Store").write_bytes(b"not an image")  # ignored: not an image file
    return folder


def test_pneumoniamnist_uses_its_own_validation_split(tmp_path):
    write_pneumoniamnist(tmp_path / "pneumoniamnist")
    search = data.load_dataset("pneumoniamnist", tmp_path, "search")
    retrain = data.load_dataset("pneumoniamnist", tmp_path, "retrain")
    assert search.classes == ["normal", "pneumonia"] and search.root == tmp_path
    assert [len(search.splits[s][1]) for s in ("train", "val")] == [40, 10]
    assert [len(retrain.splits[s][1]) for s in ("train", "test")] == [50, 20]
    assert search.splits["train"][0].shape[1:] == (1, 28, 28) and search.splits["train"][0].dtype == torch.uint8
    assert set(search.splits["val"][1].tolist()) == {0, 1}


def test_the_real_pneumoniamnist_fetches_from_a_local_copy_and_has_its_published_splits(tmp_path, monkeypatch):
    if not (SHARED / "pneumoniamnist" / "pneumoniamnist.npz").is_file():
        pytest.skip("no local copy of PneumoniaMNIST")
    monkeypatch.setenv("TUNELAB_LOCAL_COPIES", str(SHARED))
    assert data.fetch("pneumoniamnist", tmp_path) == tmp_path / "pneumoniamnist"  # checksum verified
    search = data.load_dataset("pneumoniamnist", tmp_path, "search")
    test = data.load_dataset("pneumoniamnist", tmp_path, "retrain").splits["test"][1]
    counts = {s: torch.bincount(search.splits[s][1]).tolist() for s in ("train", "val")}
    assert counts == {"train": [1214, 3494], "val": [135, 389]} and torch.bincount(test).tolist() == [234, 390]


def test_a_corrupt_npz_is_a_clear_error(tmp_path):
    folder = tmp_path / "pneumoniamnist"
    folder.mkdir()
    train_only = {"train_images": np.zeros((3, 28, 28), np.uint8), "train_labels": np.zeros((3, 1), np.uint8)}
    np.savez(folder / "pneumoniamnist.npz", **train_only)
    data.forget()
    with pytest.raises(UserError, match="val_images and val_labels are missing"):
        data.load_dataset("pneumoniamnist", tmp_path)
    (folder / "pneumoniamnist.npz").write_bytes(b"PK garbage")
    data.forget()
    with pytest.raises(UserError, match="pneumoniamnist.npz: cannot read it"):
        data.load_dataset("pneumoniamnist", tmp_path)


def test_kaggle_folders_load_as_squares_and_tunelab_holds_out_validation(tmp_path):
    write_kaggle_chest_xray(tmp_path / "chest_xray")
    search = data.load_dataset("chest_xray", tmp_path, "search")
    retrain = data.load_dataset("chest_xray", tmp_path, "retrain")
    n_train = sum(sum(KAGGLE_COUNTS[s]) for s in ("train", "val"))  # Kaggle's 2-image val joins train
    assert len(retrain.splits["train"][1]) == n_train and len(search.splits["val"][1]) == int(0.1 * n_train)
    assert torch.bincount(retrain.splits["train"][1]).tolist() == [5, 9]
    assert torch.bincount(retrain.splits["test"][1]).tolist() == list(KAGGLE_COUNTS["test"])
    x = retrain.splits["test"][0]
    assert x.shape == (7, 1, 224, 224) and x.dtype == torch.uint8 and x.float().std() > 10  # real pixels, not blank
    assert search.classes == ["NORMAL", "PNEUMONIA"]


def test_kaggle_images_are_decoded_once_then_cached(tmp_path, monkeypatch):
    from tunelab.data import xray

    write_kaggle_chest_xray(tmp_path / "chest_xray")
    first = xray.read_image_folders(tmp_path / "chest_xray", ["NORMAL", "PNEUMONIA"], 32)
    monkeypatch.setattr(xray, "_image", lambda path, size: pytest.fail("decoded again"))
    again = xray.read_image_folders(tmp_path / "chest_xray", ["NORMAL", "PNEUMONIA"], 32)
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_a_corrupt_jpeg_names_the_file(tmp_path):
    write_kaggle_chest_xray(tmp_path / "chest_xray")
    bad = tmp_path / "chest_xray" / "test" / "PNEUMONIA" / "broken.jpeg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    data.forget()
    with pytest.raises(UserError, match=f"{bad}: cannot read the image"):
        data.load_dataset("chest_xray", tmp_path, "retrain")


def test_missing_kaggle_folders_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNELAB_LOCAL_COPIES", raising=False)
    (tmp_path / "chest_xray" / "train" / "NORMAL").mkdir(parents=True)  # half there is not there
    with pytest.raises(UserError) as e:
        data.require("chest_xray", tmp_path)
    assert "train/PNEUMONIA" in str(e.value)
    assert "kaggle.com/datasets/paultimothymooney/chest-xray-pneumonia" in str(e.value)
    with pytest.raises(UserError, match="needs a login, so tunelab cannot download it"):
        data.fetch("chest_xray", tmp_path)
