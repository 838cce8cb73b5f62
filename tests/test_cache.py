import multiprocessing

import numpy as np
import torch

from tunelab import cache


def _compute_once(counter_path):
    with open(counter_path, "a") as f:
        f.write("x")
    return {"w": torch.arange(3.0)}


def _worker(counter_path):
    cache.cached("shared", lambda: _compute_once(counter_path))


def test_cached_computes_once_and_reloads(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    counter = tmp_path / "calls"
    first = cache.cached("weights", lambda: _compute_once(counter))
    again = cache.cached("weights", lambda: _compute_once(counter))
    assert torch.equal(first["w"], again["w"])
    assert counter.read_text() == "x"
    assert not list((tmp_path / "cache").glob("*.partial"))


def test_concurrent_processes_compute_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    counter = tmp_path / "calls"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(counter),)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert counter.read_text() == "x"


def test_pretrained_weights_are_keyed_by_config_and_training_data(tmp_path, monkeypatch):
    from tunelab.data import Data

    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    counter = tmp_path / "calls"
    x, y = torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1])
    data = Data("toy", {"train": (x, y), "val": (x[:1], y[:1])}, ["a", "b"], torch.device("cpu"))
    other_images = Data("toy", {"train": (x + 1, y)}, ["a", "b"], torch.device("cpu"))
    other_labels = Data("toy", {"train": (x, 1 - y)}, ["a", "b"], torch.device("cpu"))
    config = {"lr": 0.1, "epochs": 3}

    def entry(config: dict, data: Data) -> None:
        cache.pretrained("toy_net", config, data, lambda: _compute_once(counter))

    entry(config, data)
    entry({"epochs": 3, "lr": 0.1}, data)  # the same config in another order
    entry(config, Data("toy", {"train": (x.clone(), y.clone())}, ["a", "b"], torch.device("cpu")))  # same content
    assert counter.read_text() == "x"
    entry({**config, "lr": 0.2}, data)
    entry(config, other_images)
    entry(config, other_labels)
    assert counter.read_text() == "xxxx"
    names = sorted(p.name for p in (tmp_path / "cache").glob("*.pt"))
    assert len(names) == 4 and all(n.startswith("toy_net-") for n in names)


def test_pretrained_keys_of_texts_are_their_content(tmp_path, monkeypatch):
    from tunelab.data import Data

    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "cache"))
    counter = tmp_path / "calls"

    def entry(*texts: str) -> None:
        x = np.array(texts, dtype=object)  # texts stay str until a trainable tokenises them
        data = Data("t", {"train": (x, torch.zeros(len(x)))}, [], torch.device("cpu"))
        cache.pretrained("text_net", {}, data, lambda: _compute_once(counter))

    entry("a good film", "a bad one")
    entry("".join(["a good ", "film"]), "a bad one")  # equal texts in other str objects
    assert counter.read_text() == "x"
    entry("a good film", "a bad two")
    assert counter.read_text() == "xx"
