"""What the text trainables share: cleaning, a tokeniser built on the training split only, batches of token
ids with their lengths, the losses for class and soft labels, the metrics (ROC-AUCs as ``tunelab.figures`` draws
them), and the figures.

tunelab.data gives texts as strings. Tokenisation is part of a trial's config (words or characters,
vocabulary size, minimum count, cleaning, length), so ``build`` makes a ``Tokenizer`` from the training
split alone; the other splits map tokens it has not seen to <unk>. It is a part beside the model, so its
vocabulary is checkpointed with it; it encodes each split once, padded with 0 and with the true lengths.
"""

import html
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainables import common
from tunelab import figures as plots
from tunelab.data import Data
from tunelab.errors import UserError

PAD, UNK = 0, 1
EVAL_BATCH = 512  # texts per forward pass when predicting without gradients
LEVELS = ("word", "char")
KEEPS = ("first", "last")
LOSSES = ("soft_ce", "bce")
EMBEDDING_INIT = 0.05  # token vectors start uniform in [-0.05, 0.05]


def embedding(vocab: int, dim: int) -> nn.Embedding:
    """Token embeddings that learn fast: Adam moves every weight by about lr per step, so from torch's default
    N(0, 1) start an epoch barely changes them (IMDb's word CNN: 80 % validation accuracy after one epoch,
    86 % from this start)."""
    layer = nn.Embedding(vocab, dim, padding_idx=PAD)
    nn.init.uniform_(layer.weight, -EMBEDDING_INIT, EMBEDDING_INIT)
    with torch.no_grad():
        layer.weight[PAD] = 0
    return layer


DEFAULTS: dict[str, int | float | bool | str] = {
    "level": "word",  # tokens: words (and punctuation) or characters
    "vocab_size": 20000,  # most frequent training tokens kept, <pad> and <unk> included
    "min_count": 2,  # a token needs this many occurrences in the training split
    "max_len": 200,  # tokens kept per text (the rest is cut)
    "keep": "first",  # which max_len tokens of a longer text are kept: first or last (reviews end with their verdict)
    "lowercase": True,  # lowercase before tokenising
    "clean_html": True,  # unescape HTML entities (&amp; -> &) and drop tags such as <br />
    "clean_mentions": True,  # @user mentions -> "@user"
    "clean_links": True,  # http(s)://... and www.... links -> "url"
    "clean_repeats": True,  # a character repeated 3+ times -> twice (loooove -> loove)
    "loss": "soft_ce",  # soft labels: soft_ce (cross-entropy with the normalised target) or bce (sigmoid per kind)
    "optimizer": "adam",  # sgd, adam or adamw
    "lr": 1e-3,  # peak learning rate
    "momentum": 0.9,  # SGD's Nesterov momentum (0 = plain SGD)
    "weight_decay": 0.0,  # L2 penalty (sgd, adam) or decoupled weight decay (adamw)
    "schedule": "constant",  # LR schedule per batch: constant, cosine, step or onecycle
    "grad_clip": 5.0,  # largest gradient norm (0 = no clipping)
    "batch_size": 64,  # texts per training step
    "epochs": 5,  # epochs the LR schedule spans (the harness sets it to the run's length)
}
CHOICES = {**common.TRAINING_CHOICES, "level": LEVELS, "keep": KEEPS, "loss": LOSSES}  # of every text trainable
RANGES = {**common.TRAINING_RANGES, "vocab_size": ">= 2", "min_count": ">= 1", "max_len": ">= 1", "grad_clip": ">= 0"}
# class labels: acc and auc; soft labels: rmse and auc_micro, auc_macro (see scores)
METRICS = ("val_loss", "val_acc", "val_auc", "val_rmse", "val_auc_micro", "val_auc_macro", "train_loss")

CLEANERS: dict[str, Callable[[str], str]] = {
    "html": lambda t: re.sub(r"<[^>]{1,20}>", " ", html.unescape(t)),
    "mentions": lambda t: re.sub(r"@\w+", "@user", t),
    "links": lambda t: re.sub(r"(?:https?://|www\.)\S+", "url", t),
    "repeats": lambda t: re.sub(r"(.)\1{2,}", r"\1\1", t),
}
TOKENIZER_KEYS = (
    *("level", "vocab_size", "min_count", "max_len", "keep", "lowercase"),
    *(f"clean_{step}" for step in CLEANERS),
)
WORD = re.compile(r"[\w']+|[^\w\s]")  # words (with apostrophes) and single punctuation marks or symbols


class Tokenizer:
    """Texts -> padded token ids and lengths, with a vocabulary built by ``fit`` on training texts."""

    def __init__(self, config: dict):
        common.check_choice(config, "level", LEVELS)
        common.check_choice(config, "keep", KEEPS)
        self.config = {k: config[k] for k in TOKENIZER_KEYS}
        self.vocab: list[str] = []
        self.index: dict[str, int] = {}
        self._encoded: dict[str, tuple] = {}  # split -> (its texts, (ids, lengths))

    def tokens(self, text: str) -> list[str]:
        c = self.config
        for step, clean in CLEANERS.items():
            text = clean(text) if c[f"clean_{step}"] else text
        text = text.lower() if c["lowercase"] else text
        return list(text) if c["level"] == "char" else WORD.findall(text)

    def fit(self, texts) -> "Tokenizer":
        counts = Counter(tok for text in texts for tok in self.tokens(text))
        kept = sorted((t for t, n in counts.items() if n >= self.config["min_count"]), key=lambda t: (-counts[t], t))
        self.load_state_dict({"vocab": ["<pad>", "<unk>", *kept[: max(0, self.config["vocab_size"] - 2)]]})
        return self

    def encode(self, texts) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (N x longest, padded with 0) and lengths (at least 1: an empty text is one <unk>)."""
        n, last = self.config["max_len"], self.config["keep"] == "last"
        rows = [[self.index.get(t, UNK) for t in self.tokens(text)] for text in texts]
        rows = [(row[-n:] if last else row[:n]) or [UNK] for row in rows]
        ids = torch.zeros(len(rows), max(map(len, rows), default=1), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        return ids, torch.tensor([len(r) for r in rows])

    def encoded(self, data: Data, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split of ``data`` encoded, on its device; computed once per split."""
        texts = data.splits[split][0]
        if self._encoded.get(split, (None,))[0] is not texts:
            self._encoded[split] = (texts, tuple(t.to(data.device) for t in self.encode(texts)))
        return self._encoded[split][1]

    def state_dict(self) -> dict:
        return {"vocab": self.vocab}

    def load_state_dict(self, state: dict) -> None:
        self.vocab = list(state["vocab"])
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self._encoded.clear()


def trim(ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch cut to its longest text."""
    return ids[:, : int(lengths.max())], lengths


def build(config: dict, data: Data, make_model: Callable[[dict, int, int], nn.Module]) -> dict:
    """Tokeniser from the training texts, then ``make_model(config, vocabulary size, outputs)``."""
    common.check_choices(config, CHOICES)
    tokenizer = Tokenizer(config).fit(data.splits["train"][0])
    model = make_model(config, len(tokenizer.vocab), len(data.classes)).to(data.device)
    optimizer = common.make_optimizer(config, model.parameters())
    scheduler = common.make_scheduler(config, optimizer, len(data.splits["train"][1]))
    return {"model": model, "tokenizer": tokenizer, "optimizer": optimizer, "scheduler": scheduler}


def loss_of(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Cross-entropy for class labels; for soft labels (N x K floats) the configured ``loss``."""
    if not y.is_floating_point():
        return F.cross_entropy(logits, y)
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, y)
    return F.cross_entropy(logits, y / y.sum(1, keepdim=True).clamp_min(1e-8))  # target as a distribution


def probabilities(logits: torch.Tensor, soft: bool, loss: str) -> torch.Tensor:
    return torch.sigmoid(logits) if soft and loss == "bce" else logits.softmax(1)


def train_epoch(parts: dict, data: Data, config: dict) -> dict[str, float]:
    model, optimizer, scheduler = parts["model"], parts["optimizer"], parts["scheduler"]
    ids, lengths = parts["tokenizer"].encoded(data, "train")
    y = data.splits["train"][1]
    model.train()
    loss_sum = torch.zeros((), device=data.device)
    for idx in common.batches(len(y), config["batch_size"], data.device):
        loss = loss_of(model(*trim(ids[idx], lengths[idx])), y[idx], config["loss"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config["grad_clip"]:
            nn.utils.clip_grad_norm_(model.parameters(), config["grad_clip"])
        optimizer.step()
        scheduler.step()
        loss_sum = loss_sum + loss.detach() * len(idx)
    return {"loss": loss_sum.item() / len(y)}


@torch.no_grad()
def logits_of(parts: dict, data: Data, split: str) -> torch.Tensor:
    model = parts["model"].eval()
    ids, lengths = parts["tokenizer"].encoded(data, split)
    return torch.cat([model(*trim(i, n)) for i, n in zip(ids.split(EVAL_BATCH), lengths.split(EVAL_BATCH))])


def predict_proba(parts: dict, data: Data, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Predicted probabilities (N x outputs) and the labels of a split, as numpy arrays."""
    y = data.splits[split][1]
    p = probabilities(logits_of(parts, data, split), y.is_floating_point(), parts["model"].loss)
    return p.cpu().numpy(), y.cpu().numpy()


def evaluate(parts: dict, data: Data, split: str) -> dict[str, float]:
    return metrics(logits_of(parts, data, split), data, split, {"loss": parts["model"].loss})


def metrics(logits: torch.Tensor, data: Data, split: str, config: dict) -> dict[str, float]:
    """The loss of ``logits`` for the split's labels (``config["loss"]`` says which, for soft labels, and how
    logits become probabilities), then the ``scores`` of their probabilities."""
    y = data.splits[split][1]
    p = probabilities(logits, y.is_floating_point(), config["loss"])
    return {"loss": loss_of(logits, y, config["loss"]).item()} | scores(p, data, split)


def scores(p: torch.Tensor, data: Data, split: str) -> dict[str, float]:
    """Soft labels: RMSE of the probabilities over all kinds (the Kaggle metric), micro and macro ROC-AUC.
    Class labels: accuracy and ROC-AUC (of the positive class; macro over classes beyond two)."""
    y = data.splits[split][1]
    auc = plots.aucs(*plots.roc_columns(p.cpu().numpy(), y.cpu().numpy(), data.classes))
    if y.is_floating_point():
        rmse = (p - y).square().mean().sqrt().item()
        return {"rmse": rmse} | {f"auc_{k}": auc[k] for k in ("micro", "macro") if k in auc}
    main = auc.get("macro") if len(data.classes) > 2 else auc.get(data.classes[1])
    return {"acc": (p.argmax(1) == y).float().mean().item()} | ({"auc": main} if main is not None else {})


def mean_sigmoid_logits(logits: list[torch.Tensor]) -> torch.Tensor:
    """The logits of an ensemble of models with a sigmoid per kind: of the mean of their probabilities."""
    return torch.logit(torch.stack([member.double().sigmoid() for member in logits]).mean(0), eps=1e-12).float()


def ensemble(configs: list[dict], data: Data) -> Callable[[list[torch.Tensor]], torch.Tensor]:
    """How the models of ``configs`` average: their probabilities, a softmax over the classes (or the kinds, with
    soft_ce) or a sigmoid per kind (bce). Soft labels: one loss for all, whose probabilities mean the same."""
    losses = sorted({c["loss"] for c in configs}) if data.splits["train"][1].is_floating_point() else ["soft_ce"]
    if len(losses) > 1:
        raise UserError(f"--ensemble: the configs to retrain use the soft-label losses {' and '.join(losses)}, whose "
                        f"probabilities differ (a distribution over the kinds, a probability per kind) and do not "
                        f"average; give a --top-k whose configs share one loss")  # fmt: skip
    return mean_sigmoid_logits if losses == ["bce"] else common.mean_softmax_logits


def figures(parts: dict, data: Data, outdir: Path) -> dict[str, Path]:
    p, y = predict_proba(parts, data, "test")
    outdir = Path(outdir)
    roc = plots.roc_figure({"test": (p, y)}, data.classes, outdir / "roc.png", "ROC curves on the test split")
    written = {"ROC curves on the test split (kinds: positive where at least half of the annotators chose it)": roc}
    if y.ndim == 1:
        matrix = plots.confusion_figure(y, p.argmax(1), data.classes, outdir / "confusion_matrix.png", "Test split")
        written["Confusion matrix of the test split"] = matrix
    return written


def example_input(parts: dict, data: Data) -> tuple[torch.Tensor, torch.Tensor]:
    """Two encoded training texts: what the model takes (for layer tables)."""
    ids, lengths = parts["tokenizer"].encoded(data, "train")
    return trim(ids[:2], lengths[:2])
