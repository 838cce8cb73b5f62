"""A non-editable install works: a wheel built from the repository (what `pip install .` and `pip install git+URL`
install) carries the built-in experiments, and its `tunelab` lists them and runs a short search from a folder that
is not the repository.

The wheel goes into a fresh virtual environment with ``--no-deps``. What stands in for its dependencies (torch, Ray,
Optuna, ..., gigabytes to download) is a ``.pth`` file in the fresh environment's site-packages that lists the
outer environment's site-packages: Python appends that folder to ``sys.path``, after the fresh environment's own
site-packages, so the wheel's tunelab and trainables come first, and the ``.pth`` files in the outer folder (the
editable install's finder, which maps tunelab to this checkout) are not run. The test checks that the tunelab it
ran is the installed copy, not this checkout.
"""

import csv
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import REPO, subset_for

pytestmark = pytest.mark.slow

TIMEOUT_S = 300  # each step; the whole test takes about a minute on a 2-core CPU
# what the wheel is built from is a copy of the checkout without these (pip builds in the source tree: build/)
NOT_SOURCE = (".git", ".venv", "build", "*.egg-info", "__pycache__", "results", "datasets", "wandb", ".*_cache")


def run(argv: list, cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a fresh virtual environment with tunelab installed from a wheel of this checkout."""
    tmp = tmp_path_factory.mktemp("install")
    source, wheels, venv = tmp / "source", tmp / "wheels", tmp / "venv"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", wheels, source], tmp)
    (wheel,) = wheels.glob("tunelab-*.whl")
    run([sys.executable, "-m", "venv", "--without-pip", venv], tmp)
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--quiet", wheel], tmp)
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], tmp).strip())
    (site / "outer_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin"


@pytest.fixture
def clean_env(fashion_root) -> dict:
    """The environment of the commands: no PYTHONPATH (that could name this checkout), no W&B or cluster, data in
    fashion_root, results in the working directory (the default, ./results)."""
    drop = ("PYTHONPATH", "WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR", "RAY_ADDRESS", "TUNELAB_RESULTS")
    return {k: v for k, v in os.environ.items() if k not in drop} | {"TUNELAB_DATA": str(fashion_root)}


def test_the_installed_tunelab_is_not_this_checkout(installed, clean_env, tmp_path):
    code = "import tunelab, trainables; print(tunelab.__file__, trainables.__file__)"
    found = run([installed / "python", "-c", code], tmp_path, clean_env).split()
    for file in map(Path, found):
        assert not file.resolve().is_relative_to(REPO) and file.is_relative_to(installed.parent), file


def test_a_wheel_lists_the_built_in_experiments_and_searches_from_any_folder(installed, clean_env, tmp_path,
                                                                             fashion_root):  # fmt: skip
    listed = run([installed / "tunelab", "list"], tmp_path, clean_env)
    experiments = [line.split()[0] for line in listed.split("\n\n")[0].splitlines()[1:]]
    assert experiments == sorted(p.stem for p in (REPO / "search_spaces").glob("*.yaml")), listed
    assert "INVALID" not in listed

    run([installed / "tunelab", "search", "fashion_cnn", "--trials", "2", "--max-epochs", "1",
         "--subset", subset_for(fashion_root), "--wandb", "disabled"], tmp_path, clean_env)  # fmt: skip
    with open(tmp_path / "results" / "fashion_cnn" / "leaderboard.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(row["status"] == "completed" for row in rows), rows
