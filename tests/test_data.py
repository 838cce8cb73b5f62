import gzip

import numpy as np
import pytest
import torch

from tests.helpers import write_mnist_like
from tunelab import data
from tunelab.data.idx import read_idx, write_idx
from tunelab.errors import UserError


def test_idx_roundtrip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", a)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), a)


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((10, 28, 28), np.uint8))
    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(UserError, match="truncated or corrupt IDX file"):
        read_idx(tmp_path / "a.gz")
    (tmp_path / "b.gz").write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="cannot read"):
        read_idx(tmp_path / "b.gz")


def test_missing_data_set_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNELAB_LOCAL_COPIES", raising=False)
    with pytest.raises(UserError) as e:
        data.require("mnist", tmp_path)
    message = str(e.value)
    assert str(tmp_path / "mnist") in message and "tunelab data fetch mnist" in message


def test_search_splits_hold_out_validation_and_never_contain_test(fixture_root):
    search = data.load_dataset("fashion_mnist", fixture_root, "search")
    retrain = data.load_dataset("fashion_mnist", fixture_root, "retrain")
    assert set(search.splits) == {"train", "val"} and set(retrain.splits) == {"train", "test"}
    n_train, n_val = len(search.splits["train"][1]), len(search.splits["val"][1])
    assert n_val == int(0.1 * len(retrain.splits["train"][1])) and n_train + n_val == len(retrain.splits["train"][1])
    flat = lambda x: {bytes(row) for row in x.reshape(len(x), -1).numpy()}  # noqa: E731
    assert not flat(search.splits["train"][0]) & flat(search.splits["val"][0])
    again = data.load_dataset("fashion_mnist", fixture_root, "search")
    assert torch.equal(again.splits["val"][1], search.splits["val"][1])  # the slice is fixed
    assert search.splits["train"][0].dtype == torch.uint8 and search.splits["train"][0].shape[1:] == (1, 28, 28)


def test_subset_cuts_train_and_validation_but_never_the_test_set(fixture_root):
    for purpose, cut in (("search", ("train", "val")), ("retrain", ("train",))):
        full = data.load_dataset("fashion_mnist", fixture_root, purpose)
        part = data.load_dataset("fashion_mnist", fixture_root, purpose, subset=0.25)
        for split, (_, labels) in full.splits.items():
            expected = int(len(labels) * 0.25) if split in cut else len(labels)
            assert len(part.splits[split][1]) == expected


def test_fetch_copies_a_verified_local_copy_and_rejects_other_content(tmp_path, monkeypatch, fixture_root):
    # Generated files do not have the published content: fetch must refuse them, and say why.
    monkeypatch.setenv("TUNELAB_LOCAL_COPIES", str(fixture_root))
    with pytest.raises(UserError, match="content checksum"):
        data.fetch("mnist", tmp_path / "root")
    assert not list((tmp_path / "root" / "mnist").glob("*.gz"))


def test_fetch_accepts_recompressed_real_files(tmp_path, monkeypatch):
    real = data.locate("mnist", data.data_root())
    if real is None:
        pytest.skip("real MNIST is not available here (set TUNELAB_DATA)")
    copies = tmp_path / "copies" / "mnist"
    copies.mkdir(parents=True)
    for f in data.source("mnist").files:  # recompress: other archive bytes, same content
        (copies / f).write_bytes(gzip.compress(gzip.decompress((real / f).read_bytes()), compresslevel=1))
    monkeypatch.setenv("TUNELAB_LOCAL_COPIES", str(tmp_path / "copies"))
    assert data.fetch("mnist", tmp_path / "root") == tmp_path / "root" / "mnist"
    assert len(data.load_dataset("mnist", tmp_path / "root", "retrain").splits["test"][1]) == 10_000


def test_corrupt_labels_are_a_clear_error(tmp_path):
    folder = write_mnist_like(tmp_path / "fashion-mnist")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    data.forget()
    with pytest.raises(UserError, match="do not match"):
        data.load_dataset("fashion_mnist", tmp_path, "retrain")
