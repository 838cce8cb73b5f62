"""The epoch loop shared by search trials and retraining: build a trainable, train, evaluate, check; and a saved
model built again with its weights."""

import math
import time

import torch

from tunelab.data import Data
from tunelab.trainable.protocol import Trainable, load_trainable


class Diverged(FloatingPointError):
    """A metric became NaN or infinite: the run is marked failed."""


def device() -> torch.device:
    """Where trials, retrains and the weights tunelab pretrains itself run: the GPU where there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build(trainable: Trainable, config: dict, data: Data, seed: int) -> dict:
    torch.manual_seed(seed)
    return trainable.build(config, data)


def rebuild(saved: dict, data: Data) -> dict:
    """The parts of a saved model (a retrained checkpoint, ``tunelab.store.runs.StoredRun.retrained``: its trainable,
    config and ``model`` weights), built on ``data`` with those weights, in eval mode."""
    parts = build(load_trainable(saved["trainable"]), saved["config"], data, 0)
    parts["model"].load_state_dict(saved["model"])
    parts["model"].eval()
    return parts


def param_count(parts: dict) -> int:
    return sum(p.numel() for p in parts["model"].parameters())


def epoch(trainable: Trainable, parts: dict, data: Data, config: dict, eval_split: str | None) -> dict[str, float]:
    """Train one epoch and evaluate on ``eval_split`` (if any): metrics prefixed train_/<split>_, plus epoch_s."""
    start = time.perf_counter()
    metrics = {f"train_{k}": v for k, v in trainable.train_epoch(parts, data, config).items()}
    check_finite(metrics)
    if eval_split:
        metrics |= evaluate(trainable, parts, data, eval_split)
    return metrics | {"epoch_s": time.perf_counter() - start}


def evaluate(trainable: Trainable, parts: dict, data: Data, split: str) -> dict[str, float]:
    return named(trainable.evaluate(parts, data, split), split)


def named(metrics: dict[str, float], split: str) -> dict[str, float]:
    """A split's metrics prefixed with its name (val_acc, test_loss), checked to be finite."""
    metrics = {f"{split}_{k}": v for k, v in metrics.items()}
    check_finite(metrics)
    return metrics


def check_finite(metrics: dict[str, float]) -> None:
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    if bad:
        raise Diverged(f"{', '.join(bad)} became {metrics[bad[0]]} (the loss diverged)")


def state(parts: dict) -> dict:
    return {name: part.state_dict() for name, part in parts.items()}


def restore(parts: dict, saved: dict) -> None:
    for name, part in parts.items():
        part.load_state_dict(saved[name])
