"""`tunelab describe`: a trainable's layers with the shape of every intermediate tensor and the parameters
of each layer and in total (torchinfo), for its default config or a config file."""

from pathlib import Path
from types import ModuleType

import torch
import torchinfo
import yaml

import trainables
from tunelab import UserError, data as datasets


def example_input(module: ModuleType, parts: dict, data: datasets.Data):
    """What the model takes: the trainable's ``example_input``, else one training image (as floats)."""
    if hasattr(module, "example_input"):
        return module.example_input(parts, data)
    return data.splits["train"][0][:1].float()


def read_config(path: Path, defaults: dict) -> dict:
    """Hyperparameters from a YAML mapping, or from its ``config:`` (as in best.yaml and retrain/rank<k>.yaml)."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"{path}: cannot read the config ({e})") from None
    raw = raw.get("config", raw) if isinstance(raw, dict) else raw
    if not isinstance(raw, dict):
        raise UserError(f"{path}: must be a mapping of hyperparameters to values (or have one under config:)")
    unknown = sorted(set(raw) - set(defaults))
    if unknown:
        raise UserError(f"{path}: unknown hyperparameter(s) {', '.join(unknown)}; allowed: {', '.join(defaults)}")
    return raw


def describe(trainable: str, config_path: str | None, dataset: str | None, root: Path) -> str:
    try:
        module = trainables.get(trainable)
    except trainables.UnknownTrainable as e:
        raise UserError(e.args[0]) from None
    config = module.DEFAULTS | (read_config(config_path, module.DEFAULTS) if config_path else {})
    data = datasets.load(dataset or module.DATASET, root, "search")
    torch.manual_seed(0)
    try:
        parts = module.build(config, data)
    except ValueError as e:
        raise UserError(f"{trainable}: {e}") from None
    stats = torchinfo.summary(parts["model"], input_data=example_input(module, parts, data), depth=6, verbose=0,
                              col_names=("input_size", "output_size", "num_params"), row_settings=("var_names",))  # fmt: skip
    return f"{trainable} on {data.name}\n{stats}"
