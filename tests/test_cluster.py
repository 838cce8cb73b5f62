"""Searches on a real multi-node Ray cluster, simulated on this machine with Ray's own test utilities: a head
node without GPU and two worker nodes with one (logical) GPU each. The searches run through the command line
with --address and --storage, as on a real cluster, and survive a dead worker node, a killed driver and a
trial that keeps crashing, with nothing lost.

Each test prints what it saw (trials started, killed, recovered, lost; wall time): run with -s to read it.
"""

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import wandb
import yaml
from ray.cluster_utils import Cluster

from tests.helpers import REPO, wandb_run, write_mnist_like, write_student_model
from tunelab import tracking
from tunelab.engine.cluster import STATE_PERIOD_S
from tunelab.engine.search import MAX_FAILURES
from tunelab.store import leaderboard, runs

pytestmark = pytest.mark.slow

SPACE = REPO / "tests" / "cluster_space.yaml"
WORKERS = 2
FAST_NODE_DEATH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
                   "health_check_timeout_ms": 1000, "health_check_failure_threshold": 3}  # fmt: skip


@pytest.fixture(scope="module")
def ray_cluster():
    head = {"num_cpus": 1, "num_gpus": 0, "include_dashboard": False, "_system_config": FAST_NODE_DEATH}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    yield cluster
    cluster.shutdown()


@pytest.fixture
def cluster(ray_cluster):
    """The cluster with two live worker nodes (a test may have killed one)."""
    while len(ray_cluster.worker_nodes) < WORKERS:
        ray_cluster.add_node(num_cpus=2, num_gpus=1)
    ray_cluster.wait_for_nodes()
    return ray_cluster


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """A generated data set in Fashion-MNIST's files, big enough for epochs of about a second."""
    root = tmp_path_factory.mktemp("cluster-data")
    write_mnist_like(root / "fashion-mnist", n_train=3000, n_test=100)
    return root


def tunelab(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunelab", *args]


def search_args(cluster, data_root, storage, *extra, space=SPACE) -> list[str]:
    return tunelab("--data-dir", str(data_root), "search", str(space), "--name", "run", "--address", cluster.address,
                   "--storage", str(storage), *extra)  # fmt: skip


def start(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"})  # fmt: skip


def finish(argv: list[str], timeout: float = 300) -> str:
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def the_run(env) -> runs.StoredRun:
    return runs.open_run("run", env / "results")


def worker_ids(cluster) -> set[str]:
    return {node.node_id for node in cluster.worker_nodes}


def results_so_far(experiment: Path) -> dict[str, list[dict]]:
    """Each trial's results as the driver has stored them so far (result.json: one JSON line per epoch)."""
    rows = {}
    for f in experiment.glob("trial_*/result.json"):
        lines = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        if lines:
            rows[lines[0]["trial_id"]] = lines
    return rows


def report(name: str, **counts) -> None:
    print(f"\n[{name}] " + ", ".join(f"{k}={v}" for k, v in counts.items()), flush=True)


def test_half_a_gpu_per_trial_runs_trials_on_both_workers_at_once(cluster, env, data_root):
    start_time = time.monotonic()
    storage = env / "shared"
    finish(search_args(cluster, data_root, storage, "--max-epochs", "2", "--concurrency", "4", "--wandb", "disabled"))

    run = the_run(env)
    assert Path(run.experiment_path) == (storage / "run").resolve() and (storage / "run" / "tuner.pkl").is_file()
    board = run.leaderboard()
    assert len(board) == 4 and (board["status"] == "completed").all()
    history = leaderboard.histories(run)
    nodes = {trial: set(df["node_id"]) for trial, df in history.items()}
    assert all(len(n) == 1 for n in nodes.values())  # no failures: each trial stayed where it started
    assert set().union(*nodes.values()) == worker_ids(cluster)  # both workers, never the head (it has no GPU)
    spans = {
        t: (df["timestamp"].iloc[0] - df["time_this_iter_s"].iloc[0], df["timestamp"].iloc[-1])
        for t, df in history.items()
    }
    at_once = [(a, b) for a, b in itertools.combinations(history, 2)
               if nodes[a] != nodes[b] and spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]]  # fmt: skip
    assert at_once, f"no two trials ran at the same time on different workers: {spans}"
    most = max(sum(s[0] <= t < s[1] for s in spans.values()) for t, _ in spans.values())
    report("spread", trials=len(board), nodes=len(set().union(*nodes.values())), most_at_once=most,
           wall_s=round(time.monotonic() - start_time))  # fmt: skip


def test_trials_of_a_killed_worker_node_continue_from_their_checkpoints_on_another(cluster, env, data_root):
    start_time = time.monotonic()
    storage, epochs = env / "shared", 6
    search = start(search_args(cluster, data_root, storage, "--max-epochs", str(epochs), "--concurrency", "4",
                               "--wandb", "disabled"))  # fmt: skip
    victim = None
    deadline = time.monotonic() + 240
    while victim is None and search.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        for rows in results_so_far(storage / "run").values():
            # mid-way, and past epoch 1: Ray registers a reported checkpoint in a task of its own, so the latest
            # epoch's may not count yet, and a trial killed before its first one counts would start over
            if 2 <= rows[-1]["epoch"] <= epochs - 3:
                victim = next(n for n in cluster.worker_nodes if n.node_id == rows[-1]["node_id"])
                break
    assert victim is not None, "no trial was seen mid-way: " + (
        search.stdout.read() if search.poll() is not None else ""
    )
    cluster.remove_node(victim, allow_graceful=False)  # the node dies with its raylet and trial processes
    out, _ = search.communicate(timeout=300)
    assert search.returncode == 0, out

    run = the_run(env)
    board = run.leaderboard().set_index("trial_id")
    history = leaderboard.histories(run)
    for trial, df in history.items():  # every trial complete, no epoch lost or run twice
        assert list(df["epoch"]) == list(range(1, epochs + 1)), f"{trial} lost or repeated epochs: {list(df['epoch'])}"
        assert board.loc[trial, "status"] == "completed"
    killed = {t for t in board.index if (storage / "run" / f"trial_{t}" / "error.txt").is_file()}
    moved = set()  # trials that went on from their latest checkpoint on a node that lives
    for trial, df in history.items():
        on_victim = list(df["node_id"] == victim.node_id)
        if any(on_victim) and not all(on_victim):
            k = on_victim.index(False)  # epochs 1..k ran on the killed node, the rest elsewhere
            assert k >= 1 and not any(on_victim[k:]), f"{trial}: {list(df['node_id'])}"
            moved.add(trial)
    assert moved, "the killed node ran no unfinished trial"
    assert moved <= killed
    assert all("Failure # 1" in (storage / "run" / f"trial_{t}" / "error.txt").read_text() for t in killed)
    lost = len(board) - (board["status"] == "completed").sum()
    assert len(board) == 4 and lost == 0
    assert all(len(list(d.glob("checkpoint_*"))) == 1 for d in (storage / "run").glob("trial_*"))  # the latest kept
    report("worker node killed", trials=len(board), killed=len(killed), recovered_from_checkpoint=len(moved),
           recovered=sum(board.loc[t, "status"] == "completed" for t in killed), lost=lost,
           wall_s=round(time.monotonic() - start_time))  # fmt: skip


def test_a_trial_that_keeps_crashing_is_marked_failed_and_the_others_finish(cluster, env, data_root):
    start_time = time.monotonic()
    space = yaml.safe_load(SPACE.read_text())
    space["method"] = "grid"
    del space["run_cap"]  # one trial per grid point
    space["parameters"] |= {"lr": {"values": [0.003, 1.0e12, 0.01]}, "dropout": {"value": 0.1}}  # lr 1e12 diverges
    path = env / "crashing.yaml"
    path.write_text(yaml.safe_dump(space))
    out = finish(search_args(cluster, data_root, env / "shared", "--max-epochs", "2", "--concurrency", "3",
                             "--wandb", "disabled", space=path))  # fmt: skip

    board = the_run(env).leaderboard().set_index("config/lr")
    assert len(board) == 3
    assert board.loc[1e12, "status"] == "failed" and pd.isna(board.loc[1e12, "val_acc"])
    assert (board.drop(index=1e12)["status"] == "completed").all() and board.drop(index=1e12)["val_acc"].gt(0).all()
    error = (env / "shared" / "run" / f"trial_{board.loc[1e12, 'trial_id']}" / "error.txt").read_text()
    assert error.count("Failure #") == MAX_FAILURES + 1 and "diverged" in error  # tried 1 + MAX_FAILURES times
    assert f"FAILED after {MAX_FAILURES} retries" in out
    report("crashing trial", trials=3, attempts_of_crashing_trial=error.count("Failure #"), failed=1, completed=2,
           lost=0, wall_s=round(time.monotonic() - start_time))  # fmt: skip


def test_a_killed_driver_is_resumed_with_nothing_lost(cluster, env, data_root, monkeypatch):
    start_time = time.monotonic()
    # Started from a process that logged to W&B (a notebook's kernel that ran a search): W&B's service of this
    # process, whose address the commands inherit, would keep the killed search's runs open, and their epochs
    # after the kill were lost; each command keeps W&B to itself (tunelab.cli.own_service)
    monkeypatch.setenv("WANDB_SERVICE", os.environ.get("WANDB_SERVICE", ""))  # restored after the test
    wandb.init(mode="offline", dir=env, project="parent").finish()
    assert os.environ.get("WANDB_SERVICE")
    storage, epochs = env / "shared", 20  # long enough that a trial is still running when the driver is killed
    search = start(
        search_args(
            cluster,
            data_root,
            storage,
            "--max-epochs",
            str(epochs),
            "--concurrency",
            "2",
            "--wandb",
            "offline",
            "--verbose",
        )
    )  # fmt: skip  (a line per trial start and epoch)
    lines, second_finished = [], None
    for line in search.stdout:  # wait for two finished trials and a later one part-way (with a checkpoint)
        lines.append(line)
        finished = trials_that(lines, "finished")
        if len(finished) >= 2 and second_finished is None:
            second_finished = time.monotonic()
        if second_finished and trials_that(lines, "epoch") - finished:
            break
    time.sleep(max(0.0, second_finished + STATE_PERIOD_S + 1 - time.monotonic()))  # Ray's saved state has them
    search.send_signal(signal.SIGKILL)  # no chance to clean up
    lines += search.stdout.readlines()
    search.wait(timeout=60)
    finished, reported = trials_that(lines, "finished"), trials_that(lines, "epoch")
    assert len(finished) >= 2 and trials_that(lines, "started") - finished, "".join(lines)
    run = the_run(env)
    kept = {t: df for t, df in leaderboard.histories(run).items() if t in finished}
    assert set(kept) == set(finished)  # the state on the storage knows the finished trials

    out = finish(tunelab("resume", "run", "--address", cluster.address))
    board = run.leaderboard().set_index("trial_id")
    history = leaderboard.histories(run)
    assert len(board) == 4 and (board["status"] == "completed").all(), out
    for trial, df in history.items():
        assert list(df["epoch"]) == list(range(1, epochs + 1)), f"{trial}: {list(df['epoch'])}"
    for trial, df in kept.items():  # finished trials keep their results and were not run again
        pd.testing.assert_frame_equal(history[trial][["epoch", "val_acc", "node_id", "timestamp"]],
                                      df[["epoch", "val_acc", "node_id", "timestamp"]])  # fmt: skip
    configs = board.filter(like="config/").astype(str).agg("|".join, axis=1)
    assert configs.is_unique, "a config was sampled again: the sampler's history was lost"
    assert "# Leaderboard: run" in (run.dir / "leaderboard.md").read_text()

    logged = {}  # W&B offline runs: every record intact, every epoch of every trial logged
    for f in (run.dir / "wandb").glob("offline-run-*/run-*.wandb"):
        trial = f.stem.removeprefix("run-")
        if trial.startswith(tracking.LEADERBOARD_ID):  # the leaderboard's table, after the search and the resume
            continue
        logged.setdefault(trial, set()).update(h["epoch"] for h in wandb_run(f)["history"] if "epoch" in h)
    assert set(logged) == set(board.index)
    assert all(logged[t] == set(range(1, epochs + 1)) for t in board.index), logged
    interrupted = trials_that(lines, "started") - finished
    lost = len(reported - set(board.index))  # trials with results before the kill that are gone
    assert lost == 0
    report("driver killed", trials=len(board), started_before_kill=len(finished | interrupted),
           finished_before_kill=len(finished), interrupted=len(interrupted),
           recovered=sum(board.loc[t, "status"] == "completed" for t in interrupted if t in board.index), lost=lost,
           wall_s=round(time.monotonic() - start_time))  # fmt: skip


def trials_that(lines: list[str], event: str) -> set[str]:
    """Trial ids from the search's progress lines ("trial ID started: ...", "trial ID epoch 1: ...", with --verbose;
    "trial ID finished (...)")."""
    return {m.group(1) for line in lines if (m := re.search(rf"\btrial (\S+) {event}\b", line))}


def test_a_users_own_trainable_travels_to_the_nodes_with_its_folder(cluster, env, data_root):
    """A student's file and the module beside it that it imports: the folder is the nodes' working directory."""
    folder = write_student_model(env / "hw3", {"sweep": {"hidden": {"values": [8, 16]}}})
    sweep = yaml.safe_load((folder / "sweep.yaml").read_text()) | {"resources": {"cpu": 1, "gpu": 0.5}}
    (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    finish(
        tunelab(
            "--data-dir",
            str(data_root),
            "search",
            str(folder / "sweep.yaml"),
            "--address",
            cluster.address,
            "--storage",
            str(env / "shared"),
            "--wandb",
            "disabled",
        )
    )
    run = runs.open_run("sweep", env / "results")
    board = run.leaderboard()
    assert len(board) == 2 and (board["status"] == "completed").all()
    nodes = set(pd.concat(leaderboard.histories(run).values())["node_id"])
    assert nodes and nodes <= worker_ids(cluster)  # trained on the worker nodes (the head has no GPU)


def test_a_users_folder_reaches_the_nodes_without_its_secrets(cluster, env, data_root):
    """The trainable's folder holds a W&B key, an .env and AWS credentials: its trials, run in the shipped folder
    (their working directory), fail if any of them is there."""
    folder = write_student_model(env / "hw3", {"sweep": {"hidden": {"values": [8, 16]}}})
    for name in (".netrc", ".env", ".aws/credentials"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("SECRET\n")
    model = (folder / "mlp.py").read_text()
    check = ('def build(config, data):\n    import os\n'
             '    assert not [n for n in (".netrc", ".env", ".aws") if os.path.exists(n)], os.listdir()\n')  # fmt: skip
    (folder / "mlp.py").write_text(model.replace("def build(config, data):\n", check))
    sweep = yaml.safe_load((folder / "sweep.yaml").read_text()) | {"resources": {"cpu": 1, "gpu": 0.5}}
    (folder / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    out = finish(tunelab("--data-dir", str(data_root), "search", str(folder / "sweep.yaml"), "--address",
                         cluster.address, "--storage", str(env / "shared"), "--wandb", "disabled"))  # fmt: skip
    board = runs.open_run("sweep", env / "results").leaderboard()
    assert len(board) == 2 and (board["status"] == "completed").all(), out
