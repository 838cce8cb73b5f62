import multiprocessing

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
