"""A recurrent text classifier (the RNN exercise; weather tweets, Sentiment140, IMDb reviews).

Token embedding -> RNN, GRU or LSTM (layers, bidirectional) over the packed sequences, so padding is never
read -> the last hidden state, or the mean or max of the outputs over each text's length -> dropout -> the
output layer. The exercise's configuration is the baseline: embedding 100, hidden 256, batch 64, Adam.
"""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trainables import common, text, tfidf

DATASET = "imdb"
METRIC = "val_acc"
MODE = "max"

DEFAULTS: dict[str, int | float | bool | str] = {
    **text.DEFAULTS,  # tokenisation, loss and optimizer (commented in trainables/text.py)
    "cell": "lstm",  # rnn (tanh), gru or lstm
    "embedding_dim": 100,  # size of the token embeddings
    "hidden": 256,  # hidden units per direction
    "layers": 1,  # stacked recurrent layers
    "bidirectional": False,  # also read each text backwards
    "pooling": "last",  # text vector: last (final hidden states), mean or max of the outputs over the text
    "dropout": 0.0,  # on the embeddings, between recurrent layers and before the output layer
}

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
POOLINGS = ("last", "mean", "max")
CHOICES = {**text.CHOICES, "cell": tuple(CELLS), "pooling": POOLINGS}
RANGES = {**text.RANGES, "embedding_dim": ">= 1", "hidden": ">= 1", "layers": ">= 1", "dropout": "[0, 1)"}
METRICS = text.METRICS


class TextRNN(nn.Module):
    def __init__(self, config: dict, vocab: int, outputs: int):
        super().__init__()
        self.loss = config["loss"]  # how its outputs become probabilities (text.probabilities)
        self.pooling = config["pooling"]
        self.embedding = text.embedding(vocab, config["embedding_dim"])
        self.rnn = CELLS[config["cell"]](
            config["embedding_dim"],
            config["hidden"],
            num_layers=config["layers"],
            batch_first=True,
            bidirectional=config["bidirectional"],
            dropout=config["dropout"] if config["layers"] > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config["dropout"])
        self.out = nn.Linear(config["hidden"] * (2 if config["bidirectional"] else 1), outputs)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.dropout(self.embedding(ids))
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, hidden = self.rnn(packed)
        if self.pooling == "last":
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # an LSTM's (h, c)
            pooled = torch.cat(list(hidden[-1 - self.rnn.bidirectional :]), dim=1)  # the last layer, both directions
        else:
            outputs, _ = pad_packed_sequence(outputs, batch_first=True)
            inside = (torch.arange(outputs.shape[1], device=ids.device)[None, :] < lengths[:, None])[..., None]
            if self.pooling == "mean":
                pooled = (outputs * inside).sum(1) / lengths[:, None]
            else:
                pooled = outputs.masked_fill(~inside, float("-inf")).amax(1)
        return self.out(self.dropout(pooled))


def make_model(config: dict, vocab: int, outputs: int) -> TextRNN:
    common.check_choices(config, CHOICES)
    return TextRNN(config, vocab, outputs)


def build(config: dict, data) -> dict:
    return text.build(config, data, make_model)


train_epoch, evaluate, figures = text.train_epoch, text.evaluate, text.figures
outputs, metrics, ensemble = text.logits_of, text.metrics, text.ensemble
predict_proba, example_input = text.predict_proba, text.example_input
classical_baseline = tfidf.baseline
