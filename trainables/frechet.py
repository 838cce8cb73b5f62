"""How close generated images are to real ones: the Fréchet distance in a classifier's feature space.

The classifier is ``cnn_classifier`` with the settings below, trained once on a data set's training split
and cached (``tunelab.cache.pretrained``: keyed by these settings and the split's content), so every
trial, retrain and report on the same training data measures in the same feature space. Its features are the
activations of its last hidden layer. This is not FID (no Inception network): distances compare only with
each other and with ``frechet_real``, the distance of a shuffled sample of as many real training images to
the same images, which is as low as the distance can go with that many samples.
"""

from typing import Any

import torch
from torch import nn

from trainables import cnn_classifier, common
from tunelab import cache
from tunelab.data import Data

# a small classifier that trains in a minute or two on one CPU core (about 90 % on Fashion-MNIST)
CLASSIFIER: dict[str, Any] = {**cnn_classifier.DEFAULTS, "width": 16, "epochs": 4}
REFERENCE_SEED = 0  # which training images form the reference sample


def classifier(data: Data) -> nn.Sequential:
    """The classifier of ``data``'s training split, trained the first time and then loaded from the cache."""
    x, _ = data.splits["train"]
    # two images give the input shape; the input normalisation's statistics come with the weights
    model = cnn_classifier.make_model(CLASSIFIER, x[:2], len(data.classes)).to(data.device)
    model.load_state_dict(cache.pretrained(f"frechet_classifier_{data.name}", CLASSIFIER, data, lambda: _train(data)))
    return model.eval()


def _train(data: Data) -> dict:
    train_only = Data(data.name, {"train": data.splits["train"]}, data.classes, data.device)
    # the caller's random stream is the same whether the cache had it or not; callers may be in no_grad mode
    with torch.random.fork_rng(), torch.enable_grad():
        torch.manual_seed(0)
        parts = cnn_classifier.build(CLASSIFIER, train_only)
        for _ in range(CLASSIFIER["epochs"]):
            cnn_classifier.train_epoch(parts, train_only, CLASSIFIER)
    return {k: v.cpu() for k, v in parts["model"].state_dict().items()}


@torch.no_grad()
def embed(model: nn.Sequential, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (last hidden layer) and logits of float images in [0, 1]."""
    head, features = model[-1], model[:-2]  # ... Linear, ReLU | Dropout, Linear
    feats = torch.cat([features(batch) for batch in images.split(common.EVAL_BATCH)])
    return feats, head(feats)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^1/2) of two sets of feature vectors (rows)."""
    a, b = a.double(), b.double()
    diff = a.mean(0) - b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    # tr (C_a C_b)^1/2 = sum of the square roots of the eigenvalues of C_a^1/2 C_b C_a^1/2 (symmetric, PSD)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    inner = root_a @ cov_b @ root_a
    cross = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    return max((diff @ diff + cov_a.trace() + cov_b.trace() - 2 * cross).item(), 0.0)  # >= 0 but for rounding


def scores(fake: torch.Tensor, data: Data, split: str, labels: torch.Tensor | None = None) -> dict[str, float]:
    """How generated images (floats in [0, 1], as many as the split has) compare with ``split``'s images.

    frechet: their Fréchet distance to the split's images; frechet_real: the same for a shuffled sample of
    as many training images (capped at the training split's size, and fake is cut to the same number).
    With labels (the classes the fakes were generated for): class_acc, the share the classifier assigns to
    their class, beside class_acc_real, its accuracy on the split's real images.
    """
    model = classifier(data)
    x, y = data.splits[split]
    train = data.splits["train"][0]
    n = min(len(fake), len(train))
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(REFERENCE_SEED))[:n]
    real_feats, real_logits = embed(model, common.to_float(x))
    fake_feats, fake_logits = embed(model, fake[:n])
    sample_feats, _ = embed(model, common.to_float(train[order.to(train.device)]))
    result = {
        "frechet": frechet_distance(fake_feats, real_feats),
        "frechet_real": frechet_distance(sample_feats, real_feats),
    }
    if labels is not None:
        result["class_acc"] = (fake_logits.argmax(1) == labels[:n]).float().mean().item()
        result["class_acc_real"] = (real_logits.argmax(1) == y).float().mean().item()
    return result
