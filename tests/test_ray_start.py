"""`tunelab search --address HOST:PORT` against a head node started as a user starts one, `ray start --head`,
with token authentication on (the head found a token in its ~/.ray/auth_token). Each driver runs in a process
of its own with a clean environment: the simulated clusters of test_cluster.py set RAY_AUTH_MODE=token in the
test process, which hides what a driver without it does. Ray stays on 127.0.0.1."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, write_mnist_like

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).with_name("ray"))
CLEARED = ("RAY_", "WANDB_", "TUNELAB_")  # a user's shell has none of these set


def clean_env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps Ray's addresses on loopback: with it unset, a driver resolves
    # 127.0.0.1 to this machine's network address, where this head does not listen
    return env | {"HOME": str(home), "PYTHONUNBUFFERED": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"} | extra


@pytest.fixture(scope="module")
def head():
    """A head node of 1 CPU and no GPU from `ray start --head --block`, its token in its own HOME. It is ended
    through its process: `ray stop` would stop every Ray on the machine, other test runs' included."""
    root = Path(tempfile.mkdtemp(prefix="rs"))  # short: Ray's socket paths live under --temp-dir
    home = root / "home"
    home.mkdir()
    env = clean_env(home)
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = root / "ray_start.log"
    with log.open("w") as out:
        argv = [RAY, "start", "--head", "--block", "--port", str(port), "--num-cpus", "1", "--num-gpus", "0",
                "--include-dashboard", "false", "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
                "--temp-dir", str(root / "ray")]  # fmt: skip
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "Ray runtime started" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert "Token authentication is enabled" in log.read_text()
        yield {"address": f"127.0.0.1:{port}", "home": home, "token": (home / ".ray" / "auth_token").read_text()}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):  # whatever outlived it: its processes name its temp dir
            try:
                if str(root).encode() in cmdline.read_bytes():
                    os.kill(int(cmdline.parent.name), signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def space(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny experiment on 1 CPU and its data root."""
    root = tmp_path_factory.mktemp("ray-start")
    write_mnist_like(root / "data" / "fashion-mnist", n_train=200, n_test=50)
    raw = yaml.safe_load((REPO / "tests" / "cluster_space.yaml").read_text())
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw | {"run_cap": 1, "max_epochs": 1, "resources": {"cpu": 1, "gpu": 0}}))
    return path, root / "data"


def search(space, results: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    path, data = space
    argv = [sys.executable, "-m", "tunelab", "--data-dir", str(data), "--results-dir", str(results),
            "search", str(path), "--wandb", "disabled", *extra]  # fmt: skip
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_a_driver_uses_the_token_that_ray_start_found(head, space, tmp_path):
    done = search(space, tmp_path, clean_env(head["home"]), "--address", head["address"],
                  "--trials", "1", "--max-epochs", "1")  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert re.search(r"trial \S+ finished \(completed, 1 epoch\): .*; 1 of 1 trials done", out), out
    assert (tmp_path / "tiny" / "leaderboard.csv").is_file()
    assert "Token authentication" not in out  # Ray's notice at every start: not a search's output


def test_a_driver_without_a_token_is_told_how_to_get_one(head, space, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    done = search(space, tmp_path / "results", clean_env(home), "--address", head["address"])
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr
    assert f"the Ray cluster at '{head['address']}' uses token authentication and this machine has no token" in err
    assert "~/.ray/auth_token" in err and "`ray get-auth-token`" in err and "RAY_AUTH_TOKEN" in err
    assert "Traceback" not in err
    assert err.count("Failed to get cluster ID") <= 1  # told at once: ray.init retries for 20 s, a line a second
    assert not (tmp_path / "results").exists()


def test_a_wrong_token_is_named_as_such(head, space, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    done = search(space, tmp_path / "results", clean_env(home, RAY_AUTH_TOKEN="0" * 32), "--address", head["address"])
    assert done.returncode == 2 and "refuses this machine's token" in done.stderr, done.stdout + done.stderr


def test_a_gpu_trial_on_a_cluster_without_one_names_its_nodes(head, space, tmp_path):
    # the token from RAY_AUTH_TOKEN this time, with no ~/.ray/auth_token
    home = tmp_path / "home"
    home.mkdir()
    done = search(space, tmp_path / "results", clean_env(home, RAY_AUTH_TOKEN=head["token"]),
                  "--address", head["address"], "--gpus-per-trial", "1")  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert ("a trial asks for 1 CPU, 1 GPU (--cpus-per-trial, --gpus-per-trial), but no node of the Ray cluster has "
            "that much: head: 1 CPU, 0 GPUs") in done.stderr  # fmt: skip
    assert "Traceback" not in done.stderr and not (tmp_path / "results").exists()


def report_cluster_config(head, groups: dict[str, dict]) -> None:
    """Report node types to the head as an autoscaler does (Ray's ClusterConfig); none clears them."""
    code = ("import sys, json; from ray._raylet import GcsClient; from ray.core.generated import autoscaler_pb2\n"
            "config = autoscaler_pb2.ClusterConfig()\n"
            "for name, resources in json.loads(sys.argv[2]).items():\n"
            "    config.node_group_configs.add(name=name, max_count=2).resources.update(resources)\n"
            "GcsClient(address=sys.argv[1]).report_cluster_config(config.SerializeToString())")  # fmt: skip
    env = clean_env(head["home"], RAY_AUTH_MODE="token")
    subprocess.run([sys.executable, "-c", code, head["address"], json.dumps(groups)], env=env, check=True, timeout=60)


def test_a_gpu_trial_starts_where_the_autoscaler_can_add_a_gpu_node(head, space, tmp_path):
    report_cluster_config(head, {"gpu_worker": {"CPU": 2, "GPU": 1}})
    try:
        done = search(space, tmp_path, clean_env(head["home"]), "--address", head["address"], "--gpus-per-trial", "1",
                      "--time-budget", "3")  # fmt: skip  # no node comes: the trial waits until the budget ends
    finally:
        report_cluster_config(head, {})
    # the search started and ended with its budget, but no trial finished: exit 1, saying what became of it
    assert done.returncode == 1, done.stdout + done.stderr
    assert "tunelab: error: no trial of run 'tiny' reached a value of val_acc (1 " in done.stderr
    assert (tmp_path / "tiny" / "leaderboard.csv").is_file()
