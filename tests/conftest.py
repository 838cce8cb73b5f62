import os
from pathlib import Path

import pytest

from tests.helpers import write_mnist_like, write_text_data
from tunelab.data import locate


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


@pytest.fixture(scope="module")
def text_root(tmp_path_factory) -> Path:
    """A data root with the generated text data sets (weather, Sentiment140, IMDb), one per test module."""
    return write_text_data(tmp_path_factory.mktemp("text"))


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
