"""cluster.yaml: valid for Ray's cluster launcher (Ray's own schema and defaults), shaped as tunelab needs it;
and the options that point a search at a cluster. (The searches on a cluster are in test_cluster.py.)"""

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from ray._private.state import state
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.helpers import REPO
from tunelab.engine import cluster
from tunelab.errors import UserError

TEXT = (REPO / "cluster.yaml").read_text()


@pytest.fixture
def config() -> dict:
    """cluster.yaml as `ray up` sees it: merged with the provider's defaults (no cloud call)."""
    return prepare_config(yaml.safe_load(TEXT))


def test_valid_for_rays_cluster_launcher(config):
    validate_config(config)


def test_validation_rejects_a_broken_config(config):
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["resourcez"] = {"GPU": 1}
    with pytest.raises(Exception, match="resourcez"):
        validate_config(broken)


def test_cpu_head_and_gpu_workers(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    gpu = [t for t in workers if t["resources"].get("GPU", 0) >= 1]
    assert gpu, "no worker node type with a GPU"
    for t in gpu:
        assert 0 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"]
        assert t["resources"]["CPU"] >= 1


def test_every_node_installs_this_repository(config):
    mounted = [remote for remote, local in config["file_mounts"].items() if local in (".", "./")]
    assert mounted, "the repository is not mounted on the nodes"
    for commands in (config["head_setup_commands"], config["worker_setup_commands"]):  # setup_commands merged in
        assert any(f"pip install --quiet -e {mounted[0]}" in c for c in commands)
        assert any("ray[default" in c for c in commands)


def test_no_credentials():
    assert not re.search(r"(?i)wandb_api_key|aws_(access|secret)|AKIA[0-9A-Z]{16}|secret|password|token", TEXT)


def test_address_from_the_flag_else_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster.address(None) is None  # a local Ray
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert cluster.address(None) == "10.0.0.1:6379"
    assert cluster.address("auto") == "auto"
    assert cluster.address("ray://head:10001") == "ray://head:10001"
    assert cluster.address("local") is None  # a Ray of the search's own, whatever RAY_ADDRESS says


def test_storage_uri_kept_local_path_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cluster.storage("s3://bucket/tunelab") == "s3://bucket/tunelab"
    assert cluster.storage("shared/runs") == str(tmp_path.resolve() / "shared" / "runs")
    assert cluster.storage(None) is None


def test_the_code_shipped_to_the_nodes_is_this_checkout():
    modules = [Path(p) for p in cluster.runtime_env("cnn_classifier")["py_modules"]]
    assert modules == [REPO / "tunelab", REPO / "trainables"] and all((m / "__init__.py").is_file() for m in modules)


def test_a_users_trainable_file_ships_its_folder_as_the_nodes_working_directory(tmp_path):
    env = cluster.runtime_env(str(tmp_path / "hw3" / "mlp.py"))
    assert env["working_dir"] == str(tmp_path / "hw3") and "working_dir" not in cluster.runtime_env("gan")
    assert {"results", "datasets", "*.pt"} <= set(env["excludes"])  # a student's results and data stay home
    assert [Path(p).name for p in env["py_modules"]] == ["tunelab", "trainables"]


def test_an_importable_module_of_the_users_ships_its_package(tmp_path, monkeypatch):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "mymodel.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cluster.runtime_env("mypkg.mymodel")["py_modules"][-1] == str(tmp_path / "mypkg")


def test_an_unreachable_cluster_is_a_clear_error_at_once(env, capsys, fixture_root):
    import socket

    from tunelab.cli import main

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["--data-dir", str(fixture_root), "search", "fashion_cnn", "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Ray cluster at '127.0.0.1:{port}'" in err and "Traceback" not in err


def test_gpu_trials_start_on_a_ray_up_head_before_its_gpu_workers_are_up(config, tmp_path, monkeypatch):
    """On the head of `ray up cluster.yaml`, only the head may be up yet: the GPU workers that the launcher's config
    names (Ray's autoscaler reports no node types to a driver) can still serve --gpus-per-trial 0.25."""
    bootstrap = tmp_path / "ray_bootstrap_config.yaml"
    bootstrap.write_text(json.dumps(config))  # as `ray up` writes it on the head: the prepared config, in JSON
    monkeypatch.setattr(cluster, "BOOTSTRAP_CONFIG", bootstrap)
    monkeypatch.setattr(state, "get_cluster_config", lambda: None)
    head = {"Alive": True, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 4.0, "node:__internal_head__": 1.0}}
    monkeypatch.setattr(cluster.ray, "nodes", lambda: [head])
    assert cluster.check_resources(1, 0.25) == 1
    with pytest.raises(UserError) as refused:
        cluster.check_resources(1, 2)
    assert str(refused.value) == ("a trial asks for 1 CPU, 2 GPUs (--cpus-per-trial, --gpus-per-trial), but no node of "
                                  "the Ray cluster has that much: head: 4 CPUs, 0 GPUs; nor can its autoscaler add one "
                                  "(gpu_worker: 4 CPUs, 1 GPU)")  # fmt: skip
    worker = {"Alive": True, "NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 4.0, "GPU": 1.0}}
    monkeypatch.setattr(cluster.ray, "nodes", lambda: [head, worker])
    assert cluster.check_resources(1, 0.25) == 4  # trials that fit on the live nodes: the search's default concurrency
