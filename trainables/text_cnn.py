"""A 1D convolutional text classifier, character-level or word-level (weather tweets, Sentiment140, IMDb).

Token embeddings (characters or words, as ``level`` says) feed one branch per kernel width; a branch is
``depth`` valid convolutions with ReLU and a 2x max-pool between them, ending in a max over time that only
sees positions inside the text. The branches are concatenated -> dropout -> the output layer. Word-level
with widths 3,4,5 and depth 1 is Kim's (2014) CNN; character-level with one width and depth 3 is a small
Zhang et al. (2015) CNN.
"""

import torch
from torch import nn

from trainables import text, tfidf

DATASET = "sentiment140"
METRIC = "val_acc"
MODE = "max"

DEFAULTS: dict[str, int | float | bool | str] = {
    **text.DEFAULTS,  # tokenisation, loss and optimizer (commented in trainables/text.py)
    "embedding_dim": 64,  # size of the token embeddings
    "kernel_sizes": "3,4,5",  # kernel widths, one branch each (comma-separated)
    "filters": 100,  # channels of every convolution
    "depth": 1,  # convolutions per branch, with a 2x max-pool between them
    "dropout": 0.5,  # before the output layer
}
CHOICES = text.CHOICES
RANGES = {**text.RANGES, "embedding_dim": ">= 1", "filters": ">= 1", "depth": ">= 1", "dropout": "[0, 1)"}
METRICS = text.METRICS


class TextCNN(nn.Module):
    def __init__(self, config: dict, vocab: int, outputs: int):
        super().__init__()
        self.loss = config["loss"]  # how its outputs become probabilities (text.probabilities)
        self.embedding = text.embedding(vocab, config["embedding_dim"])
        self.kernel_sizes = kernel_sizes(config)
        self.branches = nn.ModuleList()
        for k in self.kernel_sizes:
            layers: list[nn.Module] = []
            for i in range(config["depth"]):
                layers += [nn.MaxPool1d(2)] if i else []
                channels = config["filters"] if i else config["embedding_dim"]
                layers += [nn.Conv1d(channels, config["filters"], k), nn.ReLU()]
            self.branches.append(nn.Sequential(*layers))
        self.depth = config["depth"]
        self.dropout = nn.Dropout(config["dropout"])
        self.out = nn.Linear(config["filters"] * len(self.kernel_sizes), outputs)

    def output_lengths(self, lengths: torch.Tensor, k: int) -> torch.Tensor:
        """How many outputs of a branch with kernel width k come from inside each text (at least 1)."""
        for i in range(self.depth):
            lengths = (lengths // 2 if i else lengths) - k + 1
        return lengths.clamp(min=1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        need = max(self.min_length(k) for k in self.kernel_sizes)
        # short batches: pad to one output
        ids = nn.functional.pad(ids, (0, max(0, need - ids.shape[1])), value=text.PAD)
        x = self.embedding(ids).transpose(1, 2)  # N x embedding x time
        pooled = []
        for k, branch in zip(self.kernel_sizes, self.branches):
            y = branch(x)
            inside = torch.arange(y.shape[2], device=ids.device)[None, :] < self.output_lengths(lengths, k)[:, None]
            pooled.append(y.masked_fill(~inside[:, None, :], float("-inf")).amax(2))
        return self.out(self.dropout(torch.cat(pooled, 1)))

    def min_length(self, k: int) -> int:
        """The shortest input that gives one output of a branch with kernel width k."""
        need = 1
        for i in reversed(range(self.depth)):
            need += k - 1
            need *= 2 if i else 1
        return need


def kernel_sizes(config: dict) -> list[int]:
    try:
        sizes = [int(k) for k in str(config["kernel_sizes"]).split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ValueError(
            f"kernel_sizes must be positive integers separated by commas (e.g. '3,4,5'), not {config['kernel_sizes']!r}"
        )
    return sizes


def make_model(config: dict, vocab: int, outputs: int) -> TextCNN:
    if config["depth"] < 1:
        raise ValueError(f"depth must be at least 1, not {config['depth']}")
    return TextCNN(config, vocab, outputs)


def build(config: dict, data) -> dict:
    return text.build(config, data, make_model)


train_epoch, evaluate, figures = text.train_epoch, text.evaluate, text.figures
outputs, metrics, ensemble = text.logits_of, text.metrics, text.ensemble
predict_proba, example_input = text.predict_proba, text.example_input
classical_baseline = tfidf.baseline
