"""A variational autoencoder for small grayscale images (Kingma and Welling 2014).

Encoder: flatten -> ``layers`` x (linear ``hidden``, ReLU) -> mean and log-variance of a diagonal Gaussian
q(z|x) over ``latent`` dimensions. A code is drawn as z = mean + std * eps (the reparameterisation trick).
Decoder: the mirror image, ending in one logit per pixel: a Bernoulli distribution p(x|z) over the pixels.
Training minimises reconstruction + beta * KL(q(z|x) || N(0, I)) per image (in nats); the search minimises
the validation negative ELBO (beta = 1, so trials with any beta compare), reported with its reconstruction
and KL terms apart, beside the Fréchet distance of samples from the prior (``trainables.frechet``). The
defaults are the assignment's baseline (Keras's MLP VAE): one hidden layer of 512, a 2-D latent space.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainables import common, frechet
from tunelab.data import Data

DATASET = "fashion_mnist"
METRIC = "val_nelbo"
MODE = "min"

DEFAULTS: dict[str, int | float | bool | str] = {
    "latent": 2,  # dimensions of z (2: the report maps the latent space itself; more: a t-SNE of the means)
    "hidden": 512,  # width of every hidden layer
    "layers": 1,  # hidden layers of the encoder, and of the decoder
    "beta": 1.0,  # weight of the KL term in the training loss (a beta-VAE when not 1)
    "optimizer": "adam",  # sgd, adam or adamw
    "lr": 1e-3,  # peak learning rate
    "momentum": 0.9,  # SGD's Nesterov momentum (0 = plain SGD)
    "weight_decay": 0.0,  # L2 penalty (sgd, adam) or decoupled weight decay (adamw)
    "schedule": "constant",  # LR schedule per batch: constant, cosine, step or onecycle
    "batch_size": 128,  # images per training step
    "epochs": 10,  # epochs the LR schedule spans (the harness sets it to the run's length)
}
TSNE_POINTS = 2000  # test images in the t-SNE of the latent means
CHOICES = common.TRAINING_CHOICES
RANGES = {**common.TRAINING_RANGES, "latent": ">= 1", "hidden": ">= 1", "layers": ">= 0", "beta": ">= 0"}
METRICS = ("val_nelbo", "val_recon", "val_kl", "val_frechet", "val_frechet_real", "train_loss", "train_nelbo",
           "train_recon", "train_kl")  # fmt: skip


def mlp(sizes: list[int]) -> list[nn.Module]:
    """Linear layers between consecutive sizes, with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU(inplace=True)] if i < len(sizes) - 2 else [])
    return layers


class VAE(nn.Module):
    """``forward(x)`` returns the reconstruction logits and q(z|x)'s mean and log-variance."""

    def __init__(self, shape: tuple, hidden: int, layers: int, latent: int):
        super().__init__()
        pixels = shape[0] * shape[1] * shape[2]
        self.latent = latent
        self.encoder = nn.Sequential(nn.Flatten(), *mlp([pixels] + [hidden] * layers + [2 * latent]))
        self.decoder = nn.Sequential(*mlp([latent] + [hidden] * layers + [pixels]), nn.Unflatten(1, shape))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        mean, logvar = self.encode(x)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device)
        return self.decoder(mean + eps * (0.5 * logvar).exp()), mean, logvar

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """n images decoded from z ~ N(0, I): each pixel's Bernoulli mean in [0, 1]."""
        self.eval()
        device = next(self.parameters()).device
        gen = torch.Generator(device).manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.latent, generator=gen, device=device)
        return torch.cat([torch.sigmoid(self.decoder(zb)) for zb in z.split(common.EVAL_BATCH)])


def terms(logits: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The reconstruction term -log p(x|z) and KL(q(z|x) || N(0, I)), each summed per image, batch means."""
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)
    kl = -0.5 * (1 + logvar - mean.square() - logvar.exp()).sum() / len(x)
    return recon, kl


def build(config: dict, data: Data) -> dict:
    x, _ = data.splits["train"]
    model = VAE(tuple(x.shape[1:]), config["hidden"], config["layers"], config["latent"]).to(data.device)
    optimizer = common.make_optimizer(config, model.parameters())
    return {"model": model, "optimizer": optimizer, "scheduler": common.make_scheduler(config, optimizer, len(x))}


def train_epoch(parts: dict, data: Data, config: dict) -> dict[str, float]:
    model, optimizer, scheduler = parts["model"], parts["optimizer"], parts["scheduler"]
    x, _ = data.splits["train"]
    model.train()
    sums = torch.zeros(3, device=data.device)  # loss, recon, kl, each times the batch's size
    for idx in common.batches(len(x), config["batch_size"], data.device):
        xb = common.to_float(x[idx])
        logits, mean, logvar = model(xb)
        recon, kl = terms(logits, mean, logvar, xb)
        loss = recon + config["beta"] * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        sums += torch.stack([loss, recon, kl]).detach() * len(idx)
    loss, recon, kl = (sums / len(x)).tolist()
    return {"loss": loss, "nelbo": recon + kl, "recon": recon, "kl": kl}


@torch.no_grad()
def evaluate(parts: dict, data: Data, split: str) -> dict[str, float]:
    """The negative ELBO (one z per image, drawn from a fixed seed) and its terms, and the Fréchet distance
    of as many samples from the prior as the split has."""
    model = parts["model"].eval()
    x, _ = data.splits[split]
    gen = torch.Generator(data.device).manual_seed(0)
    recon = kl = 0.0
    for xb in x.split(common.EVAL_BATCH):
        xb = common.to_float(xb)
        logits, mean, logvar = model(xb, gen)
        r, k = terms(logits, mean, logvar, xb)
        recon, kl = recon + r.item() * len(xb), kl + k.item() * len(xb)
    recon, kl = recon / len(x), kl / len(x)
    return {"nelbo": recon + kl, "recon": recon, "kl": kl, **frechet.scores(model.sample(len(x), seed=0), data, split)}


@torch.no_grad()
def reconstruct(model: VAE, images: torch.Tensor) -> torch.Tensor:
    """Reconstructions in [0, 1] of uint8 images, decoded from the latent mean (no draw of z: the same every time)."""
    model.eval()
    means = [model.encode(common.to_float(batch))[0] for batch in images.split(common.EVAL_BATCH)]
    return torch.sigmoid(model.decoder(torch.cat(means)))


def sample(model: VAE, n: int, seed: int) -> torch.Tensor:
    """n images decoded from z ~ N(0, I), seeded (``tunelab.report.comparison`` uses ``reconstruct`` unless the runs
    beside it only sample, as a GAN)."""
    return model.sample(n, seed)


def figures(parts: dict, data: Data, outdir: Path) -> dict[str, Path]:
    # plotting libraries load only for the report, not in every trial worker
    from matplotlib.figure import Figure

    from tunelab import figures

    model, outdir = parts["model"].eval(), Path(outdir)
    x, y = data.splits["test"]
    written = {}

    fig = Figure(figsize=(12, 1.7), layout="constrained")
    figures.show_grid(fig.subplots(), model.sample(10, seed=1), per_row=10)
    written["10 random samples from the prior, decoded (pixel means)"] = _save(fig, outdir / "prior_samples.png")

    shown = x[:10]
    fig = Figure(figsize=(12, 2.9), layout="constrained")
    figures.show_grid(fig.subplots(), torch.cat([common.to_float(shown), reconstruct(model, shown)]), per_row=10)
    caption = "Test images (top) and their reconstructions from the latent mean (bottom)"
    written[caption] = _save(fig, outdir / "reconstructions.png")

    with torch.no_grad():
        batches = x[: TSNE_POINTS * 2].split(common.EVAL_BATCH)
        means = torch.cat([model.encode(common.to_float(b))[0] for b in batches])
    if model.latent == 2:
        fig = Figure(figsize=(15, 7), layout="constrained")
        scatter_ax, grid_ax = fig.subplots(1, 2)
        labels = y[: len(means)].cpu().numpy()
        figures.scatter_by_class(scatter_ax, means.cpu().numpy(), labels, data.classes, "latent means of test images")
        title = "decoded on a grid of the prior's quantiles (5 %-95 %)"
        figures.show_grid(grid_ax, _manifold(model, 15), per_row=15, title=title)
        caption = "The 2-D latent space: test images' means by class, and images decoded across it"
        written[caption] = _save(fig, outdir / "latent_map.png")
    else:
        points = means[:TSNE_POINTS].cpu().numpy()
        tsne = figures.tsne_figure(points, y[: len(points)].cpu().numpy(), data.classes, outdir / "latent_tsne.png",
                                   f"t-SNE of the {model.latent}-D latent means")  # fmt: skip
        written[f"t-SNE of the latent means of {len(points)} test images, by class"] = tsne
    return written


def _manifold(model: VAE, n: int) -> torch.Tensor:
    """Images decoded on an n x n grid of z over the 5 %-95 % quantiles of N(0, 1) in each of 2 dimensions."""
    device = next(model.parameters()).device
    ticks = torch.special.ndtri(torch.linspace(0.05, 0.95, n, device=device))
    z = torch.stack(torch.meshgrid(ticks.flip(0), ticks, indexing="ij"), -1).flip(-1).reshape(-1, 2)  # rows: z2 down
    with torch.no_grad():
        return torch.sigmoid(model.decoder(z))


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path
