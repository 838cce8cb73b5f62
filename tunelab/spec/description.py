"""`tunelab describe`: a trainable's layers with the shape of every intermediate tensor and the parameters
of each layer and in total (torchinfo), for its default config or a config file."""

from pathlib import Path

import torch
import torchinfo

from tunelab import data as datasets
from tunelab.errors import UserError
from tunelab.spec import spaces
from tunelab.trainable import protocol


def read_config(path: Path, defaults: dict) -> dict:
    """Hyperparameters from a YAML mapping, or from its ``config:`` (as in a run's best.yaml)."""
    raw = spaces.read_yaml(path)
    raw = raw.get("config", raw) if isinstance(raw, dict) else raw
    if not isinstance(raw, dict):
        raise UserError(f"{path}: must be a mapping of hyperparameters to values (or have one under config:)")
    return known(raw, path, defaults)


def known(config: dict, where, defaults: dict) -> dict:
    """``config``, whose every key is a hyperparameter of ``defaults``; else a UserError naming ``where`` it is from."""
    unknown = sorted(map(str, set(config) - set(defaults)))  # YAML keys may be numbers too
    if unknown:
        raise UserError(f"{where}: unknown hyperparameter(s) {', '.join(unknown)}; allowed: {', '.join(defaults)}")
    return config


def describe(trainable: str, config: str | Path | dict | None, dataset: str | None, root: Path) -> str:
    """``config``: hyperparameters over the trainable's defaults, a mapping or a YAML file of one (a run's
    best.yaml)."""
    checked = protocol.load_trainable(str(Path(trainable).resolve()) if trainable.endswith(".py") else trainable)
    if isinstance(config, dict):
        given = known(config, "config", checked.defaults)
    elif config is None or isinstance(config, (str, Path)):
        given = read_config(Path(config), checked.defaults) if config else {}
    else:
        raise UserError(f"config: must be a mapping of hyperparameters to values or a YAML file of one, not {config!r}")
    config = checked.defaults | given
    if dataset and (mismatch := datasets.other_kind(dataset, checked.dataset)):
        raise UserError(f"--dataset: {mismatch}")
    data = datasets.load_dataset(dataset or checked.dataset, root, "search")
    torch.manual_seed(0)
    try:
        parts = checked.build(config, data)
    except ValueError as e:
        raise UserError(f"{trainable}: {e}") from None
    stats = torchinfo.summary(
        parts["model"],
        input_data=checked.example_input(parts, data),
        depth=6,
        verbose=0,
        col_names=("input_size", "output_size", "num_params"),
        row_settings=("var_names",),
    )
    return f"{trainable} on {data.name}\n{stats}"
