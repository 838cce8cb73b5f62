"""cluster.yaml: valid for Ray's cluster launcher (Ray's own schema and defaults), shaped as tunelab needs it;
and the options that point a search at a cluster. (The searches on a cluster are in test_cluster.py.)"""

import copy
import re
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.conftest import REPO
from tunelab import cluster

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


def test_storage_uri_kept_local_path_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cluster.storage("s3://bucket/tunelab") == "s3://bucket/tunelab"
    assert cluster.storage("shared/runs") == str(tmp_path.resolve() / "shared" / "runs")
    assert cluster.storage(None) is None


def test_the_code_shipped_to_the_nodes_is_this_checkout():
    modules = [Path(p) for p in cluster.runtime_env()["py_modules"]]
    assert modules == [REPO / "tunelab", REPO / "trainables"] and all((m / "__init__.py").is_file() for m in modules)


def test_an_unreachable_cluster_is_a_clear_error_at_once(env, capsys, fixture_root):
    import socket

    from tunelab.cli import main

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["--data-dir", str(fixture_root), "search", "fashion_cnn", "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Ray cluster at '127.0.0.1:{port}'" in err and "Traceback" not in err
