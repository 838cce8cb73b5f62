"""Model-side helpers shared by the trainables: minibatches, augmentation, optimizers and LR schedules.

Data stays on its device as uint8; batches are index slices of it, converted and augmented whole.
"""

import math
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

EVAL_BATCH = 1024  # images per forward pass when predicting without gradients
AUGMENTS = ("none", "flip", "crop", "flip_crop", "affine", "flip_affine")
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "rmsprop")  # make_optimizer's


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [0, 1]."""
    return x.float().div_(255)


def batches(n: int, batch_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A shuffled split of range(n) into index tensors of batch_size (the last may be smaller)."""
    return torch.randperm(n, device=device).split(batch_size)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's outputs for uint8 images x, in eval mode and in large batches."""
    model.eval()
    return torch.cat([model(to_float(xb)) for xb in x.split(EVAL_BATCH)])


def logits_of_probabilities(p: torch.Tensor) -> torch.Tensor:
    """Logits whose softmax is ``p`` (N x classes): its log (in float64, so that a tiny probability stays finite),
    so that softmax, argmax and cross-entropy of them are ``p``, its prediction and its negative log-likelihood."""
    return p.double().clamp_min(torch.finfo(torch.float64).tiny).log().float()


def mean_softmax_logits(logits: list[torch.Tensor]) -> torch.Tensor:
    """The logits of an ensemble of classifiers: of the mean of their predicted class probabilities."""
    return logits_of_probabilities(torch.stack([member.double().softmax(1) for member in logits]).mean(0))


def softmax_ensemble(configs: list[dict], data) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    """A classifier's ``ensemble`` hook: its members' class probabilities average whatever their configs."""
    return mean_softmax_logits


def classifier_epoch(
    y: torch.Tensor,
    batch_size: int,
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: LambdaLR | None = None,
) -> dict[str, float]:
    """One epoch of a classifier in shuffled minibatches: ``logits_of(indices)`` gives a batch's logits and
    ``loss_of(logits, labels)`` its loss; ``scheduler`` (if any) steps per batch. Mean loss and accuracy."""
    loss_sum, correct = torch.zeros((), device=y.device), torch.zeros((), device=y.device)
    for idx in batches(len(y), batch_size, y.device):
        logits = logits_of(idx)
        loss = loss_of(logits, y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum = loss_sum + loss.detach() * len(idx)
        correct = correct + (logits.argmax(1) == y[idx]).sum()
    return {"loss": loss_sum.item() / len(y), "acc": correct.item() / len(y)}


def random_flip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(len(x), 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)


def random_crop(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Zero-pad each image by pad px and crop it back at a random offset: a shift of up to pad px each way."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n, 1, 1, 1), device=x.device)
    rows = (dy + torch.arange(h, device=x.device).view(1, 1, h, 1)).expand(n, c, h, w + 2 * pad)
    cols = (dx + torch.arange(w, device=x.device).view(1, 1, 1, w)).expand(n, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


def random_affine(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Rotate each image by up to 10 degrees, scale it by 0.9-1.1 and shift it by up to pad px each way."""
    import kornia.augmentation as K  # loaded only when augmenting

    shift = pad / x.shape[-1]
    return K.RandomAffine(degrees=10, translate=(shift, shift), scale=(0.9, 1.1), p=1.0)(x)


def augment(x: torch.Tensor, kind: str, pad: int) -> torch.Tensor:
    """A batch of float images augmented as ``kind`` (one of AUGMENTS) says: ``flip`` a random left-right
    flip, ``crop`` a random shift of up to pad px, ``affine`` a random rotation, scaling and shift."""
    if kind.startswith("flip"):
        x = random_flip(x)
    if kind.endswith("crop"):
        x = random_crop(x, pad)
    if kind.endswith("affine"):
        x = random_affine(x, pad)
    return x


def check_choice(config: dict, key: str, choices: Iterable) -> None:
    if config[key] not in choices:
        raise ValueError(f"{key} must be one of {', '.join(map(str, choices))}, not {config[key]!r}")


def check_choices(config: dict, choices: Mapping[str, Iterable]) -> None:
    """Every key of a trainable's CHOICES has one of its values in ``config``."""
    for key, allowed in choices.items():
        check_choice(config, key, allowed)


def make_optimizer(config: dict, params: Iterable[nn.Parameter], lr: float | None = None) -> torch.optim.Optimizer:
    """config["optimizer"]: "sgd" (Nesterov momentum when momentum > 0), "adam", "adamw", "adadelta" or "rmsprop",
    at ``lr`` (default: config["lr"]; the GAN's two networks each have their own). weight_decay, momentum, beta1 and
    beta2 (Adam's) come from the config where it has them, else they are torch's defaults."""
    lr = config["lr"] if lr is None else lr
    wd = config.get("weight_decay", 0.0)
    betas = (config.get("beta1", 0.9), config.get("beta2", 0.999))
    match config["optimizer"]:
        case "sgd":
            m = config.get("momentum", 0.0)
            return torch.optim.SGD(params, lr=lr, momentum=m, nesterov=m > 0, weight_decay=wd)
        case "adam":
            return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd)
        case "adamw":
            return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd)
        case "adadelta":
            return torch.optim.Adadelta(params, lr=lr, weight_decay=wd)
        case "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, weight_decay=wd)
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {config['optimizer']!r}")


def one_cycle(t: float) -> float:
    """Linear warm-up from lr/25 over the first 30 %, then cosine annealing to 0."""
    return 0.04 + 0.96 * t / 0.3 if t < 0.3 else 0.5 * (1 + math.cos(math.pi * (t - 0.3) / 0.7))


# LR multipliers as functions of training progress t in [0, 1]
SCHEDULES: dict[str, Callable[[float], float]] = {
    "constant": lambda t: 1.0,
    "cosine": lambda t: 0.5 * (1 + math.cos(math.pi * t)),
    "step": lambda t: 0.1 ** ((t >= 0.5) + (t >= 0.75)),  # /10 at half and at three quarters
    "onecycle": one_cycle,
}
# the CHOICES (tunelab.trainable.protocol) of the keys that make_optimizer and make_scheduler read
TRAINING_CHOICES = {"optimizer": OPTIMIZERS, "schedule": tuple(SCHEDULES)}
# the RANGES (tunelab.trainable.protocol) of the keys that make_optimizer and the training loops read
TRAINING_RANGES = {"lr": "> 0", "momentum": "[0, 1)", "weight_decay": ">= 0", "batch_size": ">= 1", "epochs": ">= 1"}


def make_scheduler(config: dict, optimizer: torch.optim.Optimizer, n_train: int) -> LambdaLR:
    """config["schedule"] stepped once per batch over config["epochs"] epochs (then held at its end)."""
    check_choice(config, "schedule", SCHEDULES)
    factor = SCHEDULES[config["schedule"]]
    total = config["epochs"] * math.ceil(n_train / config["batch_size"])
    return LambdaLR(optimizer, lambda step: factor(min(step / total, 1.0)))


def pretraining_device() -> torch.device:
    """Where a trainable pretrains the weights it keeps (``tunelab.cache``): the GPU where there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def best_epoch_weights(module: ModuleType, config: dict, data) -> dict[str, torch.Tensor]:
    """A trainable trained from seed 0 for config["epochs"] epochs: the weights (on the CPU) of its epoch with the
    best validation accuracy. The caller's random stream is the same afterwards (for weights tunelab pretrains)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        parts, best, best_acc = module.build(config, data), None, -1.0
        for _ in range(config["epochs"]):
            module.train_epoch(parts, data, config)
            acc = module.evaluate(parts, data, "val")["acc"]
            if acc > best_acc:
                best, best_acc = {k: v.detach().cpu().clone() for k, v in parts["model"].state_dict().items()}, acc
    assert best is not None, "config['epochs'] >= 1 (RANGES)"
    return best
