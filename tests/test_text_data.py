"""The text data sets read from files in their published formats: splits, labels, subsets, errors."""

import numpy as np
import pytest
import torch

from tests.helpers import imdb_reviews, write_imdb, write_sentiment140, write_weather
from tunelab import data
from tunelab.data.text import split_60_20_20
from tunelab.errors import UserError


@pytest.fixture(autouse=True)
def fresh_reads():
    data.forget()


def test_split_is_60_20_20_stratified_disjoint_and_fixed():
    strata = np.repeat([0, 1, 2], [500, 300, 200])
    parts = split_60_20_20(strata)
    assert [len(p) for p in parts] == [600, 200, 200]
    assert len(np.unique(np.concatenate(parts))) == 1000
    for part, share in zip(parts, (0.6, 0.2, 0.2)):
        assert np.bincount(strata[part]).tolist() == [round(share * n) for n in (500, 300, 200)]
    assert all(np.array_equal(a, b) for a, b in zip(parts, split_60_20_20(strata)))


def test_weather_soft_labels_and_own_three_way_split(text_root, capsys):
    search = data.load_dataset("weather_tweets", text_root, "search")
    retrain = data.load_dataset("weather_tweets", text_root, "retrain")
    assert set(search.splits) == {"train", "val"} and set(retrain.splits) == {"train", "test"}
    assert [len(search.splits[s][0]) for s in ("train", "val")] == [180, 60] and len(retrain.splits["test"][0]) == 60
    texts, y = search.splits["train"]
    assert isinstance(texts[0], str) and y.dtype == torch.float32 and y.shape == (180, 15)
    assert len(search.classes) == 15 and search.classes[9] == "rain"
    rainy = y[:, 9] > 0.5
    assert all("rain" in t or "umbrella" in t or "wet" in t for t in texts[rainy.numpy()])
    test = set(retrain.splits["test"][0])
    assert not test & set(retrain.splits["train"][0])
    assert "holds 300 of the 77,946 rows of the published data: a subset" in capsys.readouterr().err


def test_weather_reads_kaggles_plain_csv(tmp_path):
    write_weather(tmp_path / "crowdflower-weather-twitter", name="train.csv")
    assert len(data.load_dataset("weather_tweets", tmp_path, "retrain").splits["test"][0]) == 60


def test_sentiment140_stratified_split_and_manual_test(text_root):
    retrain = data.load_dataset("sentiment140", text_root, "retrain")
    assert set(retrain.splits) == {"train", "test", "test_manual"}
    (train_x, train_y), (_, test_y) = retrain.splits["train"], retrain.splits["test"]
    assert (len(train_y), len(test_y)) == (320, 80) and test_y.float().mean() == 0.5 and train_y.dtype == torch.long
    assert set(train_y.tolist()) == {0, 1} and any("café" in t for t in train_x)  # latin-1 decoded
    manual_x, manual_y = retrain.splits["test_manual"]
    assert len(manual_y) == 20 and set(manual_y.tolist()) == {0, 1}  # the 10 neutral tweets are left out
    search = data.load_dataset("sentiment140", text_root, "search", subset=0.5)
    assert (len(search.splits["train"][1]), len(search.splits["val"][1])) == (120, 40)


def test_imdb_archive_and_extracted_folder_read_the_same(tmp_path, text_root):
    folder = write_imdb(tmp_path / "imdb", archive=False)
    from_folder = data.load_dataset("imdb", tmp_path, "retrain")
    from_archive = data.load_dataset("imdb", text_root, "retrain")
    for split in ("train", "test"):
        assert list(from_folder.splits[split][0]) == list(from_archive.splits[split][0])
        assert torch.equal(from_folder.splits[split][1], from_archive.splits[split][1])
    reviews = imdb_reviews()
    positive = {v.decode() for k, v in reviews.items() if "/test/pos/" in k}
    texts, y = from_folder.splits["test"]
    assert {t for t, label in zip(texts, y) if label == 1} == positive and len(y) == 80
    assert (folder / "aclImdb" / "train" / "pos").is_dir()


def test_missing_text_data_set_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNELAB_LOCAL_COPIES", raising=False)
    with pytest.raises(UserError, match="Kaggle's competition crowdflower-weather-twitter"):
        data.require("weather_tweets", tmp_path)
    with pytest.raises(UserError, match=r"downloads from https://ai.stanford.edu/~amaas/data/sentiment/"):
        data.require("imdb", tmp_path)


def test_fetch_copies_a_local_subset_copy(tmp_path, monkeypatch, text_root):
    monkeypatch.setenv("TUNELAB_LOCAL_COPIES", str(text_root))
    target = data.fetch("sentiment140", tmp_path / "root")
    assert target == tmp_path / "root" / "sentiment140" and data.locate("sentiment140", tmp_path / "root") == target


def test_wrong_files_are_clear_errors(tmp_path):
    folder = tmp_path / "crowdflower-weather-twitter"
    folder.mkdir()
    (folder / "train.csv").write_text("id,text\n1,hello\n")
    with pytest.raises(UserError, match="columns tweet, k1, .* are missing"):
        data.load_dataset("weather_tweets", tmp_path)
    write_sentiment140(tmp_path / "sentiment140")
    (tmp_path / "sentiment140" / "testdata.manual.2009.06.14.csv").write_text('"x","y"\n')
    with pytest.raises(UserError, match="polarity 0, 2 or 4"):
        data.load_dataset("sentiment140", tmp_path)
    (tmp_path / "imdb").mkdir()
    (tmp_path / "imdb" / "aclImdb_v1.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(UserError, match="aclImdb_v1.tar.gz: cannot read"):
        data.load_dataset("imdb", tmp_path)
