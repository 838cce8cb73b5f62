"""What a search ships to a Ray cluster (code, not secrets; every data set it reads) and whose token it uses."""

import dataclasses
import os
import secrets
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import optuna.distributions as od
import pytest
import ray

from tests.helpers import REPO, write_mnist_like
from tunelab import data as datasets
from tunelab.engine import cluster, search as engine, trial
from tunelab.errors import UserError
from tunelab.spec import spaces
from tunelab.store import runs

SECRETS = (".netrc", ".env", ".aws/credentials", ".ssh/id_rsa", ".ray/auth_token")


def write_secrets(folder: Path) -> None:
    for name in SECRETS:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("machine api.wandb.ai password SECRET\n")


def test_a_users_folder_ships_code_not_secrets_venvs_data_or_weights(tmp_path):
    folder = tmp_path / "hw3"
    (folder / "helpers").mkdir(parents=True)
    (folder / "mlp.py").write_text("")
    (folder / "helpers" / "blocks.py").write_text("")
    write_secrets(folder)
    for name in ("data/x.npy", "datasets/a.gz", "results/r/leaderboard.csv", "model.pt", "w.ckpt", ".git/HEAD",
                 "myenv/pyvenv.cfg", "myenv/lib/big.so", "helpers/__pycache__/b.pyc", "wandb/run/x"):  # fmt: skip
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")
    env = cluster.runtime_env(str(folder / "mlp.py"))
    assert env["working_dir"] == str(folder) and "/myenv/" in env["excludes"]
    from ray._private.runtime_env.packaging import _zip_files  # Ray's own packaging: what the nodes get

    package = tmp_path / "package.zip"
    _zip_files(str(folder), env["excludes"], str(package), include_gitignore=True)
    assert sorted(zipfile.ZipFile(package).namelist()) == ["helpers/blocks.py", "mlp.py"]


def test_a_folder_too_large_to_ship_is_refused_before_ray_starts(tmp_path, monkeypatch):
    folder = tmp_path / "hw3"
    (folder / "inputs").mkdir(parents=True)
    (folder / "mlp.py").write_text("")
    (folder / "inputs" / "images.npy").write_bytes(b"\0" * 3 * 2**20)
    (folder / "datasets").mkdir()
    (folder / "datasets" / "stays.npy").write_bytes(b"\0" * 8 * 2**20)  # excluded: not counted
    monkeypatch.setattr(cluster, "UPLOAD_LIMIT", 2 * 2**20)
    with pytest.raises(UserError) as e:
        cluster.runtime_env(str(folder / "mlp.py"))
    assert str(e.value).startswith(f"{folder} would ship 3 MiB to the cluster's nodes (Ray's limit: 2 MiB; "
                                   "biggest: inputs/ 3 MiB): move data")  # fmt: skip


def test_every_data_set_a_search_reads_is_in_the_shipped_object_refs(fixture_root, tmp_path):
    """examples_net's finetune variant pretrains on MNIST: the driver ships it beside the experiment's data set, and a
    worker's reads of either use the shipped arrays whatever root they name."""
    spec = spaces.load_spec("fashion_ablation")
    options = runs.Options(address="127.0.0.1:6379")
    run = runs.StoredRun(tmp_path / "run", spec, options, fixture_root)
    ray.init(num_cpus=1, include_dashboard=False, address="local")
    try:
        wrapped = engine._trainable(run, engine._check(run))
        registry = next(c.cell_contents for c in wrapped.__closure__ if hasattr(c.cell_contents, "references"))
        key = next(k for k in registry.references if k.endswith("_shipped"))
        shipped = ray.get(registry.references[key])
    finally:
        ray.shutdown()
    assert set(shipped) == {"fashion_mnist", "mnist"}
    assert np.array_equal(shipped["mnist"]["train_y"], datasets.read("mnist", fixture_root)["train_y"])
    try:  # on a worker node without the driver's data root
        trial._data(trial.TrialJob(spec, str(tmp_path / "absent"), 1.0, 1), shipped)
        mnist = datasets.load_dataset("mnist", tmp_path / "absent", "search")
    finally:
        datasets._shipped.clear()
    assert len(mnist.splits["train"][1]) + len(mnist.splits["val"][1]) == len(shipped["mnist"]["train_y"])


def test_a_backbone_pretrained_on_mnist_ships_mnist_too(fixture_root, tmp_path):
    """transfer reads MNIST only where a search may try the pretrained mnist_cnn backbone: its prepare names it."""
    spec = spaces.load_spec("fashion_transfer")
    searched = {"backbone": od.CategoricalDistribution(["mnist_cnn"]),
                "freeze": od.CategoricalDistribution(["linear_probe", "scratch"])}  # fmt: skip
    run = runs.StoredRun(tmp_path / "run", dataclasses.replace(spec, params=searched, baseline=None), runs.Options(),
                   fixture_root)  # fmt: skip
    assert engine._check(run) == ("fashion_mnist", "mnist")
    scratch = dataclasses.replace(run.spec, params={"freeze": od.CategoricalDistribution(["scratch"])})
    assert engine._check(dataclasses.replace(run, spec=scratch)) == ("fashion_mnist",)


CLUSTER_SCRIPT = """
import sys, time
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False})
for _ in range(2):
    cluster.add_node(num_cpus=2, num_gpus=1)
cluster.wait_for_nodes()
print(cluster.address, flush=True)
sys.stdin.read()  # until the test closes it
cluster.shutdown()
"""


@pytest.mark.slow
def test_a_token_the_cluster_does_not_use_is_refused_before_the_search(tmp_path):
    """A head and two workers started from a plain script (no token), and a search from a HOME where a local Ray left
    ~/.ray/auth_token: every trial would fail, so the search is refused at once, naming the file."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TUNELAB_", "WANDB_"))}
    (tmp_path / "cluster-home").mkdir()
    head = subprocess.Popen([sys.executable, "-c", CLUSTER_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=clean | {"HOME": str(tmp_path / "cluster-home")})  # fmt: skip
    try:
        address = head.stdout.readline().strip()
        home = tmp_path / "home"
        (home / ".ray").mkdir(parents=True)
        (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
        write_mnist_like(tmp_path / "data" / "fashion-mnist", n_train=300, n_test=50)
        argv = [sys.executable, "-m", "tunelab", "--data-dir", str(tmp_path / "data"), "search",
                str(REPO / "tests" / "cluster_space.yaml"), "--name", "run", "--address", address, "--storage",
                str(tmp_path / "shared"), "--wandb", "disabled"]  # fmt: skip
        env = clean | {"HOME": str(home), "TUNELAB_RESULTS": str(tmp_path / "results")}
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.strip() == (
            f"tunelab: error: the Ray cluster at {address!r} does not use token authentication, but this machine has a "
            f"token ({home}/.ray/auth_token; left by a local Ray?), with which every trial would fail: remove or "
            f"rename {home}/.ray/auth_token, or set RAY_AUTH_MODE=disabled for this search"
        )
        assert not (tmp_path / "shared" / "run").exists()  # refused before the search started
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env=env | {"RAY_AUTH_MODE": "disabled"})  # fmt: skip
        assert done.returncode == 0 and "completed" in done.stdout and "failed" not in done.stdout, done.stderr
    finally:
        head.communicate("", timeout=60)
