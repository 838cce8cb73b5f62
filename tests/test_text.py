"""The text trainables' parts: tokenisation from the training split, padding and packing, losses, metrics."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import write_weather
from trainables import text, text_cnn, text_rnn, tfidf
from tunelab import data as datasets, figures
from tunelab.data import Data
from tunelab.errors import UserError

CONFIG = dict(text.DEFAULTS, min_count=1)


def texts(*items: str) -> np.ndarray:
    return np.array(items, dtype=object)


def tiny(train: np.ndarray, y: torch.Tensor, classes: list[str]) -> Data:
    return Data("tiny", {"train": (train, y), "val": (train, y), "test": (train, y)}, classes, torch.device("cpu"))


def test_vocabulary_comes_from_the_training_split_only():
    tok = text.Tokenizer(dict(CONFIG, min_count=2, vocab_size=5)).fit(texts("a a a b b c", "b d d"))
    assert tok.vocab == ["<pad>", "<unk>", "a", "b", "d"]  # c is too rare; most frequent first
    ids, lengths = tok.encode(texts("a c e b", ""))
    assert ids.tolist() == [[2, text.UNK, text.UNK, 3], [text.UNK, text.PAD, text.PAD, text.PAD]]
    assert lengths.tolist() == [4, 1]
    assert tok.encode(texts("a " * 500))[0].shape == (1, CONFIG["max_len"])


def test_long_texts_keep_their_first_or_last_tokens():
    long = texts("a b c d e")
    first = text.Tokenizer(dict(CONFIG, max_len=2)).fit(long)
    last = text.Tokenizer(dict(CONFIG, max_len=2, keep="last")).fit(long)
    assert [first.vocab[i] for i in first.encode(long)[0][0]] == ["a", "b"]
    assert [last.vocab[i] for i in last.encode(long)[0][0]] == ["d", "e"]
    with pytest.raises(ValueError, match="keep"):
        text.Tokenizer(dict(CONFIG, keep="middle"))


def test_character_alphabet():
    tok = text.Tokenizer(dict(CONFIG, level="char")).fit(texts("Hi!", "hi"))
    assert set(tok.vocab[2:]) == {"h", "i", "!"}
    assert tok.encode(texts("hiz"))[0][0, 2] == text.UNK


@pytest.mark.parametrize(
    "step, raw, cleaned",
    [
        ("html", "fun &amp; games<br />end", "fun & games end"),
        ("mentions", "@bob_1 hi", "@user hi"),
        ("links", "see http://t.co/x1 and www.x.org", "see url and url"),
        ("repeats", "sooooo goood", "soo good"),
    ],
)
def test_each_cleaning_step_is_optional(step, raw, cleaned):
    off = {f"clean_{s}": False for s in text.CLEANERS} | {"lowercase": False}
    tok = text.Tokenizer(dict(CONFIG, **off))
    assert tok.tokens(raw) == text.WORD.findall(raw)
    tok = text.Tokenizer(CONFIG | off | {f"clean_{step}": True})
    assert tok.tokens(raw) == text.WORD.findall(cleaned)


MODELS = [
    (text_rnn, {"cell": "lstm", "pooling": "last"}),
    (text_rnn, {"cell": "gru", "pooling": "mean", "bidirectional": True, "layers": 2}),
    (text_rnn, {"cell": "rnn", "pooling": "max", "bidirectional": True}),
    (text_cnn, {"kernel_sizes": "3,4,5"}),
    (text_cnn, {"kernel_sizes": "3", "depth": 3, "level": "char"}),
]


@pytest.mark.parametrize("module, changes", MODELS)
def test_padding_never_changes_a_texts_output(module, changes):
    config = dict(module.DEFAULTS, **changes, min_count=1, dropout=0.0, hidden=16, filters=8, embedding_dim=8)
    reviews = texts("a good film", "a bad plot and a long dull story that goes on and on and on")
    data = tiny(reviews, torch.tensor([1, 0]), ["neg", "pos"])
    parts = module.build(config, data)
    model = parts["model"].eval()
    ids, lengths = parts["tokenizer"].encoded(data, "train")
    alone = model(*text.trim(ids[:1], lengths[:1]))
    with torch.no_grad():
        assert torch.allclose(model(ids, lengths)[0], alone[0], atol=1e-5)  # in a batch padded to the long text
        padded = torch.nn.functional.pad(ids[:1], (0, 40))
        assert torch.allclose(model(padded, lengths[:1]), alone, atol=1e-5)


def test_cnn_takes_texts_shorter_than_its_receptive_field():
    config = dict(text_cnn.DEFAULTS, level="char", kernel_sizes="7", depth=3, min_count=1, filters=4, embedding_dim=4)
    data = tiny(texts("a", "abc"), torch.tensor([0, 1]), ["neg", "pos"])
    parts = text_cnn.build(config, data)
    assert parts["model"](*parts["tokenizer"].encoded(data, "train")).shape == (2, 2)
    with pytest.raises(ValueError, match="kernel_sizes"):
        text_cnn.build(dict(config, kernel_sizes="3;5"), data)


def test_soft_label_losses():
    logits, y = torch.randn(6, 15), torch.rand(6, 15)
    target = y / y.sum(1, keepdim=True)
    soft_ce = -(target * logits.log_softmax(1)).sum(1).mean().item()
    assert text.loss_of(logits, y, "soft_ce") == pytest.approx(soft_ce, rel=1e-5)
    assert text.loss_of(logits, y, "bce") == pytest.approx(F.binary_cross_entropy(logits.sigmoid(), y).item(), rel=1e-5)
    assert torch.allclose(text.probabilities(logits, True, "soft_ce").sum(1), torch.ones(6))
    assert torch.equal(text.probabilities(logits, True, "bce"), logits.sigmoid())


def test_aucs_per_kind_macro_and_micro():
    truth = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.5], [0.7, 0.3, 0.5], [0.1, 0.4, 0.5]])
    aucs = figures.aucs(truth, scores, ["a", "b", "c"])
    assert aucs["a"] == 1.0 and aucs["b"] == 0.75 and "c" not in aucs  # c has no positive: no AUC
    assert aucs["macro"] == 0.875
    from sklearn.metrics import roc_auc_score

    assert aucs["micro"] == pytest.approx(roc_auc_score(truth.ravel(), scores.ravel()))


def test_weather_metrics(monkeypatch):
    y = torch.tensor([[1.0, 0.0], [0.6, 0.4], [0.0, 1.0], [0.2, 0.8]])
    data = tiny(texts("rain", "rain sun", "sun", "sun sun"), y, ["rain", "sun"])
    parts = text_rnn.build(dict(text_rnn.DEFAULTS, min_count=1, hidden=8, loss="bce"), data)
    logits = torch.tensor([[2.0, -2.0], [0.5, 0.1], [-1.0, 1.0], [-3.0, 2.0]])
    monkeypatch.setattr(text, "logits_of", lambda *a: logits)
    metrics = text.evaluate(parts, data, "test")
    p = logits.sigmoid()
    assert metrics["rmse"] == pytest.approx((p - y).square().mean().sqrt().item())
    assert metrics["auc_micro"] == 1.0 and metrics["auc_macro"] == 1.0
    assert metrics["loss"] == pytest.approx(F.binary_cross_entropy(p, y).item(), rel=1e-5)


def test_soft_label_ensembles_average_one_kind_of_probability():
    y = torch.tensor([[1.0, 0.0], [0.6, 0.4], [0.0, 1.0], [0.2, 0.8]])
    data = tiny(texts("rain", "rain sun", "sun", "sun sun"), y, ["rain", "sun"])
    with pytest.raises(UserError, match="soft-label losses bce and soft_ce"):
        text.ensemble([{"loss": "soft_ce"}, {"loss": "bce"}], data)
    logits = [torch.randn(4, 2), torch.randn(4, 2)]
    mean = (logits[0].sigmoid() + logits[1].sigmoid()) / 2
    combined = text.ensemble([{"loss": "bce"}] * 2, data)(logits)
    assert torch.allclose(combined.sigmoid(), mean, atol=1e-6)
    metrics = text.metrics(combined, data, "test", {"loss": "bce"})
    assert metrics["rmse"] == pytest.approx((mean - y).square().mean().sqrt().item(), rel=1e-5)
    assert metrics["loss"] == pytest.approx(F.binary_cross_entropy(mean, y).item(), rel=1e-5)  # the mean's NLL
    softmax = text.ensemble([{"loss": "soft_ce"}] * 2, data)(logits).softmax(1)
    assert torch.allclose(softmax, (logits[0].softmax(1) + logits[1].softmax(1)) / 2, atol=1e-6)


def test_tfidf_baseline_of_soft_labels_has_the_text_metrics_but_no_loss(tmp_path):
    root = write_weather(tmp_path / "crowdflower-weather-twitter").parent
    data = datasets.load_dataset("weather_tweets", root, "retrain")
    name, metrics = tfidf.baseline(data)
    assert "ridge" in name and set(metrics) == {"test"}
    assert set(metrics["test"]) == {"rmse", "auc_micro", "auc_macro"}
    y = data.splits["test"][1]
    guess = (data.splits["train"][1].mean(0) - y).square().mean().sqrt().item()  # every tweet: the mean shares
    assert metrics["test"]["auc_micro"] > 0.9 and metrics["test"]["rmse"] < 0.8 * guess  # its words give the kind away
