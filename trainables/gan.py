"""A DCGAN-style generative adversarial network for small grayscale images (``cgan`` is its conditional form).

Generator: z -> linear -> (2w, H/4, W/4) -> BN, ReLU -> 4x4 transposed conv, stride 2 -> (w, H/2, W/2) ->
BN, ReLU -> 4x4 transposed conv, stride 2 -> (w, H, W) -> BN, ReLU -> 3x3 conv -> sigmoid: an image in
[0, 1] (the last convolution, at full size, smooths the transposed convolutions' checkerboard).
Discriminator: 4x4 conv, stride 2 -> LeakyReLU(0.2) -> 4x4 conv, stride 2 -> normalisation ->
LeakyReLU(0.2) -> linear score. The objective is searchable (the original GAN's non-saturating loss,
WGAN-GP or hinge), as are both learning rates, Adam's betas, the widths and the discriminator steps per
generator step.

``parts["model"]`` is the ``GAN``, both networks in one module: it is saved, and its ``sample`` is what
``evaluate`` scores: the Fréchet distance of as many generated images as the split has to the split's
images, in the features of a classifier tunelab trains once (``trainables.frechet``), beside the distance
of a shuffled sample of real training images. With classes (``cgan``), the class label conditions both
networks: the generator reads z and the label's one-hot code; the discriminator adds the inner product of
its features with a learned embedding of the label to its score (a projection discriminator, Miyato and
Koyama 2018).
"""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from trainables import common, frechet
from tunelab.data import Data

DATASET = "fashion_mnist"
METRIC = "val_frechet"
MODE = "min"

DEFAULTS: dict[str, int | float | bool | str] = {
    "latent": 64,  # size of the generator's noise vector z
    "g_width": 32,  # channels of the generator's last hidden layer (its first has twice as many)
    "d_width": 32,  # channels of the discriminator's first layer (its second has twice as many)
    "d_norm": "batch",  # discriminator normalisation: batch, spectral or none (wgan_gp turns batch into layer norm)
    "loss": "nonsaturating",  # objective: nonsaturating (the original GAN's), wgan_gp or hinge
    "gp_weight": 10.0,  # weight of the WGAN-GP gradient penalty
    "d_steps": 1,  # discriminator steps per generator step
    "optimizer": "adam",  # for both networks: adam (with the betas below) or rmsprop
    "lr_g": 2e-4,  # generator learning rate
    "lr_d": 2e-4,  # discriminator learning rate
    "beta1": 0.5,  # Adam's beta1 (DCGAN: 0.5)
    "beta2": 0.999,  # Adam's beta2
    "batch_size": 64,  # real images per discriminator step
    "epochs": 10,  # passes of the discriminator over the training images
}

NORMS = ("batch", "spectral", "none")
LOSSES = ("nonsaturating", "wgan_gp", "hinge")
OPTIMIZERS = ("adam", "rmsprop")  # of common.make_optimizer's, the ones GANs are trained with
CHOICES = {"d_norm": NORMS, "loss": LOSSES, "optimizer": OPTIMIZERS}
RANGES = {"latent": ">= 1", "g_width": ">= 1", "d_width": ">= 1", "gp_weight": ">= 0", "d_steps": ">= 1", "lr_g": "> 0",
          "lr_d": "> 0", "beta1": "[0, 1)", "beta2": "[0, 1)", "batch_size": ">= 1", "epochs": ">= 1"}  # fmt: skip
METRICS = ("val_frechet", "val_frechet_real", "train_loss_d", "train_loss_g")


class Generator(nn.Module):
    def __init__(self, latent: int, width: int, shape: tuple, n_classes: int):
        super().__init__()
        c, h, w = shape
        self.n_classes = n_classes
        self.net = nn.Sequential(
            nn.Linear(latent + n_classes, 2 * width * (h // 4) * (w // 4), bias=False),
            nn.Unflatten(1, (2 * width, h // 4, w // 4)),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, width, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, c, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_classes:
            assert labels is not None, "a conditional generator's images need labels"
            z = torch.cat([z, F.one_hot(labels, self.n_classes).to(z.dtype)], 1)
        return self.net(z)


class Discriminator(nn.Module):
    def __init__(self, width: int, shape: tuple, n_classes: int, norm: str):
        super().__init__()
        c, h, w = shape
        sn = spectral_norm if norm == "spectral" else (lambda layer: layer)
        norm_layer = {"batch": nn.BatchNorm2d(2 * width), "layer": nn.GroupNorm(1, 2 * width)}.get(norm, nn.Identity())
        self.features = nn.Sequential(
            sn(nn.Conv2d(c, width, 4, stride=2, padding=1)),
            nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)),
            norm_layer,
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        features = 2 * width * (h // 4) * (w // 4)
        self.score = sn(nn.Linear(features, 1))
        self.embed: nn.Module | None = None
        if n_classes:  # initialised at the score layer's scale: N(0, 1) would swamp the score at the start
            self.embed = nn.Embedding(n_classes, features)
            nn.init.uniform_(self.embed.weight, -(features**-0.5), features**-0.5)
            self.embed = sn(self.embed)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(images * 2 - 1)
        score = self.score(h).squeeze(1)
        return score + (self.embed(labels) * h).sum(1) if self.embed is not None else score


class GAN(nn.Module):
    """Generator and discriminator; ``forward(z, labels)`` is the discriminator's score of generated images."""

    def __init__(self, generator: Generator, discriminator: Discriminator, latent: int, n_classes: int):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.latent, self.n_classes = latent, n_classes

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.discriminator(self.generator(z, labels), labels)

    def example_input(self) -> tuple:
        """What ``forward`` takes, for the report's layer table: one z (and one label)."""
        device = next(self.parameters()).device
        z = torch.zeros(1, self.latent, device=device)
        return (z, torch.zeros(1, dtype=torch.long, device=device)) if self.n_classes else (z,)

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor | None = None, seed: int | None = None) -> torch.Tensor:
        """n generated images in [0, 1] (for labels[i], if conditional), in eval mode; seed fixes z."""
        self.eval()
        device = next(self.parameters()).device
        gen = torch.Generator(device).manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.latent, generator=gen, device=device)
        if labels is not None:
            label_batches = labels.split(common.EVAL_BATCH)
        else:
            label_batches = [None] * math.ceil(n / common.EVAL_BATCH)
        return torch.cat([self.generator(zb, lb) for zb, lb in zip(z.split(common.EVAL_BATCH), label_batches)])


def make_model(config: dict, shape: tuple, n_classes: int) -> GAN:
    """The GAN for images of ``shape`` (C, H, W with H and W divisible by 4); conditional if n_classes > 0."""
    if shape[1] % 4 or shape[2] % 4:
        raise ValueError(f"the GAN needs image sides divisible by 4, not {shape[1]}x{shape[2]}")
    norm = "layer" if config["d_norm"] == "batch" and config["loss"] == "wgan_gp" else config["d_norm"]
    generator = Generator(config["latent"], config["g_width"], shape, n_classes)
    discriminator = Discriminator(config["d_width"], shape, n_classes, norm)
    return GAN(generator, discriminator, config["latent"], n_classes)


def make_parts(config: dict, data: Data, n_classes: int) -> dict:
    common.check_choices(config, CHOICES)
    if config["d_steps"] < 1:
        raise ValueError(f"d_steps must be at least 1, not {config['d_steps']}")
    model = make_model(config, tuple(data.splits["train"][0].shape[1:]), n_classes).to(data.device)
    return {
        "model": model,
        "opt_g": common.make_optimizer(config, model.generator.parameters(), config["lr_g"]),
        "opt_d": common.make_optimizer(config, model.discriminator.parameters(), config["lr_d"]),
    }


def build(config: dict, data: Data) -> dict:
    return make_parts(config, data, n_classes=0)


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss from its scores of real and generated images (without WGAN-GP's penalty)."""
    match kind:
        case "nonsaturating":  # -log sigmoid(real) - log(1 - sigmoid(fake))
            return F.softplus(-real).mean() + F.softplus(fake).mean()
        case "hinge":
            return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        case "wgan_gp":
            return fake.mean() - real.mean()
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {kind!r}")


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss from the discriminator's scores of its images: -log sigmoid, or minus the score."""
    return F.softplus(-fake).mean() if kind == "nonsaturating" else -fake.mean()


def gradient_penalty(
    discriminator, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
) -> torch.Tensor:
    """WGAN-GP: mean of (|grad D|_2 - 1)^2 at random points on lines between real and generated images."""
    t = torch.rand(len(real), 1, 1, 1, device=real.device)
    mixed = (t * real + (1 - t) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(mixed, labels).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def train_epoch(parts: dict, data: Data, config: dict) -> dict[str, float]:
    model, opt_g, opt_d = parts["model"], parts["opt_g"], parts["opt_d"]
    generator, discriminator, kind = model.generator, model.discriminator, config["loss"]
    x, y = data.splits["train"]
    model.train()
    zero = torch.zeros((), device=data.device)
    sum_d, sum_g, steps_g = zero, zero, 0
    batches = common.batches(len(x), config["batch_size"], data.device)
    for step, idx in enumerate(batches, start=1):
        real, labels = common.to_float(x[idx]), y[idx] if model.n_classes else None
        fake = generator(torch.randn(len(idx), model.latent, device=data.device), labels)
        loss_d = discriminator_loss(kind, discriminator(real, labels), discriminator(fake.detach(), labels))
        if kind == "wgan_gp":
            loss_d = loss_d + config["gp_weight"] * gradient_penalty(discriminator, real, fake.detach(), labels)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        sum_d = sum_d + loss_d.detach()
        if step % config["d_steps"] == 0:
            loss_g = generator_loss(kind, discriminator(fake, labels))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            sum_g, steps_g = sum_g + loss_g.detach(), steps_g + 1
    if not steps_g:
        raise ValueError(f"an epoch of {len(batches)} batches is shorter than d_steps={config['d_steps']}")
    return {"loss_d": sum_d.item() / len(batches), "loss_g": sum_g.item() / steps_g}


def evaluate(parts: dict, data: Data, split: str) -> dict[str, float]:
    """Fréchet distances (and for a cGAN the classifier's accuracy on the generated images' classes) of as
    many samples as the split has, conditioned on the split's own labels, so the class mix is the same."""
    model = parts["model"]
    labels = data.splits[split][1] if model.n_classes else None
    fake = model.sample(len(data.splits[split][0]), labels, seed=0)
    return frechet.scores(fake, data, split, labels)


def example_input(parts: dict, data: Data) -> tuple:
    return parts["model"].example_input()


def sample(model: GAN, n: int, seed: int) -> torch.Tensor:
    """n generated images in [0, 1] from seeded z (``tunelab.report.comparison`` sets several runs' samples side by
    side)."""
    return model.sample(n, seed=seed)


def figures(parts: dict, data: Data, outdir: Path) -> dict[str, Path]:
    # plotting libraries load only for the report, not in every trial worker
    from matplotlib.figure import Figure

    from tunelab import figures as plots

    fig = Figure(figsize=(7, 3.2), layout="constrained")
    plots.show_grid(fig.subplots(), parts["model"].sample(10, seed=1), per_row=5)
    path = Path(outdir) / "samples.png"
    fig.savefig(path, dpi=110)
    return {"10 images generated by the GAN from random z": path}
