"""Running a search on a Ray cluster: which cluster, where its results live, how the code reaches the nodes.

- The cluster: ``--address`` or ``RAY_ADDRESS``; neither means a local Ray started for the search (never
  another Ray instance that runs on the same machine).
- The storage: Ray keeps a run's trials, checkpoints and state under ``--storage/<run>``, a shared file
  system or a bucket (``s3://...``, ``gs://...``) that the driver and every node can reach; by default
  the run's own results folder, which only the driver's machine sees.
- The code: the driver's copies of ``tunelab`` and ``trainables``, and a user's own trainable with the folder it
  sits in, travel to the nodes in Ray's runtime environment, so every node runs exactly the driver's code (the
  nodes' install provides the libraries).
- The data: on a cluster the driver reads the data set, and the trainable's EXTRA_DATASETS, and ships them through
  Ray's object store (tunelab.data.use_shipped on the workers), so the worker nodes need no copy of their own.
- Not secrets: a shipped folder leaves dotfiles, virtual environments, data, results and weights behind
  (USER_EXCLUDES), and a token this driver has that the cluster does not take is refused (check_reachable).
"""

import contextlib
import fnmatch
import importlib.util
import logging
import math
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import ray
import yaml
from ray._private.authentication import authentication_token_setup as ray_auth  # what ray.init does with tokens
from ray._private.state import state as ray_state
from ray._raylet import GcsClient  # type: ignore[attr-defined]  # what `ray status` connects with (not in Ray's stub)
from ray.exceptions import AuthenticationError, RayError

import trainables
from tunelab.errors import UserError

PACKAGES = ("tunelab", "trainables")  # what the nodes import from the driver's copy
STATE_PERIOD_S = 1  # how often Ray saves the search's state to the storage (its default: every 10 s or more)
AUTH_MODE = "RAY_AUTH_MODE"  # Ray's switch: token, disabled, or unset (Ray decides)
BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")  # `ray up` writes its cluster config there on the head node
# What a folder shipped to the nodes leaves behind (Ray's gitignore-style patterns; a name without "/" matches at any
# depth): dotfiles and dot-folders (secrets: .netrc, .env, .aws/, .ssh/, .ray/auth_token; and .git, .venv, caches),
# virtual environments (also any folder holding pyvenv.cfg: see _shipped), data, results, weights, caches.
# ".?*", not ".*": the latter matches the folder itself (".") and would ship nothing.
USER_EXCLUDES = [".?*", "venv", "env", "virtualenv", "datasets", "data", "results", "outputs", "wandb", "ray_results",
                 "lightning_logs", "*.pt", "*.pth", "*.ckpt", "*.safetensors", "__pycache__", "*.pyc"]  # fmt: skip
UPLOAD_LIMIT = int(os.environ.get("RAY_max_grpc_message_size", 512 * 2**20))  # Ray's GCS_STORAGE_MAX_SIZE
FLAGS = {"CPU": "--cpus-per-trial", "GPU": "--gpus-per-trial"}


def address(cli_value: str | None) -> str | None:
    """The cluster to run on: ``--address``, else ``RAY_ADDRESS``, else None (a local Ray; so does "local")."""
    value = cli_value or os.environ.get("RAY_ADDRESS") or None
    if value in (None, "local"):
        return None
    if value != "auto" and _host_port(value) is None:
        source = "--address" if cli_value else "RAY_ADDRESS"
        raise UserError(f"{source} {value!r} is not a Ray cluster's address: HOST:PORT of its head node (port 6379 "
                        "unless `ray start --head --port` chose another), ray://HOST:PORT for Ray Client (10001), "
                        "auto (the cluster that `ray start` began on this machine) or local (a Ray of the search's "
                        "own, the default)")  # fmt: skip
    return value


def _host_port(address: str) -> tuple[str, int] | None:
    """HOST and PORT of ``HOST:PORT`` or ``ray://HOST:PORT``, or None for anything else."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    return (host, int(port)) if host and sep and port.isdigit() else None


def storage(cli_value: str | None) -> str | None:
    """``--storage`` as Ray takes it: a URI unchanged, a local path made absolute."""
    if not cli_value or "://" in cli_value:
        return cli_value
    return str(Path(cli_value).expanduser().resolve())


def runtime_env(trainable: str) -> dict:
    """Ray's runtime environment for a search of ``trainable`` on a cluster: the driver's tunelab and trainables,
    and a user's trainable: a file's folder as the nodes' working directory (tunelab.trainable.protocol imports the file
    from there), or an importable module's top-level package where it is not an installed one."""
    # each package's own folder: the checkout's (editable) or site-packages' (a wheel, with tunelab/search_spaces/)
    folders = [Path(importlib.import_module(p).__path__[0]) for p in PACKAGES]
    env: dict[str, Any] = {"py_modules": [str(f) for f in folders]}
    if trainable.endswith(".py"):
        env["working_dir"] = str(Path(trainable).parent)
    elif "." in trainable or trainable not in trainables.NAMES:
        top = importlib.util.find_spec(trainable.split(".")[0])
        origin = Path(top.origin) if top and top.origin else None
        if origin and "site-packages" not in origin.parts:
            env["py_modules"].append(str(origin.parent if origin.name == "__init__.py" else origin))
    shipped = [Path(env["working_dir"])] if "working_dir" in env else []
    shipped += [Path(m) for m in env["py_modules"][len(PACKAGES) :] if Path(m).is_dir()]
    env["excludes"] = list(USER_EXCLUDES)
    for folder in shipped:
        sizes, venvs = _shipped(folder)
        env["excludes"] += [f"/{v}/" for v in venvs]  # anchored at the shipped folder
        check_upload_size(folder, sizes)
    return env


def _shipped(folder: Path) -> tuple[dict[str, int], list[str]]:
    """What ``folder`` ships past USER_EXCLUDES: the bytes of each top-level entry (a folder's name ends in "/"),
    and the virtual environments that USER_EXCLUDES does not name (any folder holding pyvenv.cfg), relative paths."""
    sizes: dict[str, int] = {}
    venvs = []
    for d, dirs, files in os.walk(folder):
        here = Path(d).relative_to(folder)
        venvs += [(here / x).as_posix() for x in dirs if not _excluded(x) and (Path(d) / x / "pyvenv.cfg").is_file()]
        dirs[:] = [x for x in dirs if not _excluded(x) and (here / x).as_posix() not in venvs]
        for f in files:
            if not _excluded(f):
                with contextlib.suppress(OSError):  # a broken link, a file gone meanwhile: Ray skips it too
                    key = f"{here.parts[0]}/" if here.parts else f
                    sizes[key] = sizes.get(key, 0) + (Path(d) / f).stat().st_size
    return sizes, venvs


def _excluded(name: str) -> bool:
    """Whether a file or folder of this name matches USER_EXCLUDES (their patterns have no "/": any depth)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in USER_EXCLUDES)


def check_upload_size(folder: Path, sizes: dict[str, int]) -> None:
    """Refuse a folder whose shipped entries' ``sizes`` exceed Ray's upload limit, before Ray starts, naming its size
    and its biggest entries (Ray's own error comes after the cluster is joined and names neither). Uncompressed: Ray
    compares the zip, so a folder just above the limit may have shipped."""
    total = sum(sizes.values())
    if total < UPLOAD_LIMIT:
        return
    biggest = ", ".join(f"{k} {_mb(v)}" for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:3] if v >= 2**20)
    raise UserError(f"{folder} would ship {_mb(total)} to the cluster's nodes (Ray's limit: {_mb(UPLOAD_LIMIT)}; "
                    f"biggest: {biggest}): move data, outputs and weights out of the trainable's folder, or put them "
                    f"in datasets/, results/ or *.pt files there, which stay behind")  # fmt: skip


def _mb(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def init(address: str | None, trainable: str) -> None:
    """Start a local Ray (no address) or connect to the cluster at ``address``, shipping the code."""
    # Our Progress callback is the live output: Ray's own tables and checkpoint-frequency warnings are off.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "10")  # W&B's per-result logging takes ~1 s on a busy 2-core CPU
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(STATE_PERIOD_S))
    # Tune's automatic TensorBoard logger costs 3 s of import per search: tunelab.engine.search adds the JSON and CSV
    # ones
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    logging.getLogger(ray_auth.__name__).setLevel(logging.ERROR)  # its notice at every start that tokens are on
    # "local": a Ray of the search's own, never another Ray instance that happens to run on this machine
    where: dict[str, Any]
    if address is None:
        where = {"address": "local", "include_dashboard": False}
    else:
        where = {"address": address, "runtime_env": runtime_env(trainable)}
    try:
        if address is not None:
            check_reachable(address)
        ray.init(**where, log_to_driver=False, logging_level=logging.WARNING, configure_logging=True)
    except (ConnectionError, TimeoutError, OSError) as e:
        raise UserError(f"cannot reach the Ray cluster at {address!r} (--address or RAY_ADDRESS): {e}; "
                        "is it up? (`ray status` on its head node)") from None  # fmt: skip


def use_token() -> bool:
    """Whether this driver authenticates with a token. ray.init turns it on by itself only for a local Ray or
    "auto", where RAY_AUTH_MODE is unset and a token is found (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token,
    where `ray start` finds it): this does the same for a cluster that wants a token (check_reachable; one that wants
    none must not get one, see there). Ray reads RAY_AUTH_MODE when it is imported, so
    setting the variable here is not enough; Ray's own function sets it and reloads Ray's config."""
    return ray_auth.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


_keep = False  # whether a local Ray, once started, serves the process's later searches (keep_local)
_kept = False  # whether the Ray that is up is such a local Ray


def keep_local(keep: bool = True) -> None:
    """Whether the local Ray that a search starts stays up for the process's later searches (the Python API: in a
    notebook's kernel, Ray's start is most of a small search's fixed cost) or stops with its search (the command
    line: one search per process). ``keep=False`` also stops one that is up. Ray stops it when the process exits
    (ray.shutdown is one of its atexit functions). A search on a cluster always joins and leaves it."""
    global _keep, _kept
    _keep = keep
    if not keep and _kept:
        ray.shutdown()
        _kept = False


@contextmanager
def connected(address: str | None, trainable: str, cpus: float, gpus: float) -> Iterator[int]:
    """Ray started or joined for one search of ``trainable`` whose trials each take ``cpus`` and ``gpus``; yields how
    many such trials fit on the cluster at once. A request that no node can serve is refused before anything starts.
    A local Ray kept up by an earlier search of the process (``keep_local``) serves this one too; each search still
    has actors of its own (Ray Tune ends a search's actors with it)."""
    global _kept
    keep = _keep and address is None
    if _kept and not (keep and ray.is_initialized()):  # a search on a cluster next, or a kept Ray stopped meanwhile
        ray.shutdown()
        _kept = False
    if not _kept:
        init(address, trainable)
        _kept = keep
    try:
        yield check_resources(cpus, gpus, local=address is None)
    finally:
        if not keep:
            ray.shutdown()


def check_resources(cpus: float, gpus: float, local: bool = False) -> int:
    """How many trials of ``cpus`` and ``gpus`` fit on the live nodes at once, at least 1 where the cluster's
    autoscaler can add a node that holds one; a trial that fits nowhere is a clear error naming what there is."""
    wanted = {"CPU": cpus, "GPU": gpus}
    nodes = [n for n in ray.nodes() if n["Alive"]]
    slots = sum(_fits(n["Resources"], wanted) for n in nodes)
    if slots:
        return slots
    if local:  # one node: this machine
        have = nodes[0]["Resources"] if nodes else {}
        short = [k for k, v in wanted.items() if v > have.get(k, 0)]
        has = ["no GPU" if k == "GPU" and not have.get(k) else _amount(have.get(k, 0), k) for k in short]
        hint = ": search on the CPU with --gpus-per-trial 0" if "no GPU" in has else ""
        raise UserError(f"a trial asks for {' and '.join(f'{_amount(wanted[k], k)} ({FLAGS[k]})' for k in short)}, "
                        f"but this machine has {' and '.join(has)}{hint}")  # fmt: skip
    types = node_types()
    if any(_fits(t, wanted) for t in types.values()):
        return 1  # the autoscaler adds a node for the first trial
    listed = "; ".join(f"{_node_name(n)}: {_amounts(n['Resources'])}" for n in nodes)
    addable = "; ".join(f"{k}: {_amounts(t)}" for k, t in types.items())
    added = f"; nor can its autoscaler add one ({addable})" if types else ""
    raise UserError(f"a trial asks for {_amounts(wanted)} ({FLAGS['CPU']}, {FLAGS['GPU']}), but no node of the Ray "
                    f"cluster has that much: {listed}{added}")  # fmt: skip


def node_types() -> dict[str, dict]:
    """The resources of each node type the cluster's autoscaler can add, by name; none without an autoscaler. Ray
    has them where the autoscaler reports them (its cluster config); Ray 2.60's own autoscalers do not, so on the
    head node of a `ray up` cluster they come from the launcher's config there (which Ray Tune also looks for)."""
    config = ray_state.get_cluster_config()
    if config is not None:
        return {g.name: dict(g.resources) for g in config.node_group_configs if g.max_count != 0}
    try:
        launched = yaml.safe_load(BOOTSTRAP_CONFIG.expanduser().read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    most = launched.get("max_workers", 0)  # a node type's own max_workers defaults to the cluster's
    head = launched.get("head_node_type")
    return {
        name: t["resources"]
        for name, t in launched.get("available_node_types", {}).items()
        if t.get("max_workers", most) > 0 and t.get("resources") and name != head
    }


def _fits(resources: dict, wanted: dict) -> int:
    """How many trials of ``wanted`` fit in ``resources`` (Ray counts resources in units of 1/10000)."""
    return min((math.floor(resources.get(k, 0) / v + 1e-6) for k, v in wanted.items() if v > 0), default=0)


def _amount(value: float, unit: str) -> str:
    return f"{value:g} {unit}{'' if value == 1 else 's'}"


def _amounts(resources: dict) -> str:
    return ", ".join(_amount(resources.get(k, 0), k) for k in FLAGS)


def _node_name(node: dict) -> str:
    return "head" if "node:__internal_head__" in node["Resources"] else node["NodeManagerAddress"]


def token_source() -> str | None:
    """Where Ray finds this machine's token, in Ray's order (an environment variable or a file), or None."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return os.environ["RAY_AUTH_TOKEN_PATH"]
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else None


def check_reachable(address: str, timeout_s: float = 5) -> None:
    """Fail fast on a HOST:PORT that does not answer (Ray itself retries for minutes), that wants a token this driver
    does not have (Ray retries that for 20 s, then says only that it cannot connect) or another one, or that wants
    none where this driver has one (see use_token); "auto" is Ray's to find."""
    if (host_port := _host_port(address)) is None:
        use_token()
        return
    socket.create_connection(host_port, timeout=timeout_s).close()
    if address.startswith("ray://"):  # Ray Client's server, not the head's GCS
        use_token()
        return
    source, mode = token_source(), os.environ.get(AUTH_MODE, "").lower() or None
    try:
        _gcs(address)  # without a token unless RAY_AUTH_MODE=token: does the cluster want one?
        if source and mode is None:
            # A driver that authenticates demands the token from the nodes too, which a cluster without tokens does not
            # send: its trials' actors are cancelled before they start (ActorDiedError), every one
            hint = "unset RAY_AUTH_TOKEN" if source == "RAY_AUTH_TOKEN" else f"remove or rename {source}"
            raise UserError(f"the Ray cluster at {address!r} does not use token authentication, but this machine has "
                            f"a token ({source}; left by a local Ray?), with which every trial would fail: {hint}, or "
                            f"set RAY_AUTH_MODE=disabled for this search")  # fmt: skip
    except AuthenticationError:
        if mode is None and source and use_token():
            with contextlib.suppress(AuthenticationError):
                return _gcs(address)
        if source and mode != "disabled":
            raise UserError(f"the Ray cluster at {address!r} refuses this machine's token ({source}): replace it with "
                            f"the head node's (`ray get-auth-token` prints it there)") from None  # fmt: skip
        raise UserError(f"the Ray cluster at {address!r} uses token authentication and this machine has no token: "
                        f"copy ~/.ray/auth_token from its head node to this machine, or set RAY_AUTH_TOKEN to what "
                        f"`ray get-auth-token` prints there") from None  # fmt: skip


def _gcs(address: str) -> None:
    """Connect to the cluster's GCS as `ray status` does (an AuthenticationError where it refuses this driver)."""
    try:
        GcsClient(address=address)
    except AuthenticationError:
        raise
    except RayError as e:
        raise ConnectionError(f"{address} answers, but not as a Ray head node's GCS port (`ray start --head "
                              f"--port`, 6379 by default): {str(e).rstrip('.')}") from None  # fmt: skip
