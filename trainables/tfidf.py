"""What a student would try first on a text data set, the text trainables' ``classical_baseline``: TF-IDF of word
uni- and bigrams (the text models' default tokens: ``text.Tokenizer``) and a linear model, fitted on the training
texts and tested with the text models' own metrics.

Class labels: logistic regression, its probabilities read as the networks' are (loss, accuracy, ROC-AUC).
Soft labels (weather tweets): ridge regression of every kind's share of the annotators, clipped to [0, 1], with
the RMSE and ROC-AUCs of the networks; no loss, since its squared error is neither of the networks' losses.
"""

import numpy as np
import torch

from trainables import common, text
from tunelab.data import Data

NAMES = {False: "TF-IDF (word 1-2-grams) + logistic regression",
         True: "TF-IDF (word 1-2-grams) + ridge regression of the kinds' shares"}  # fmt: skip


def pipeline(soft: bool):
    """TF-IDF of the words and word pairs in at least 2 training texts (sublinear counts), then the linear model:
    a scikit-learn Pipeline (imported here, not in every trial worker that imports a text trainable)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline

    tokens = text.Tokenizer(text.DEFAULTS).tokens  # cleaned and lowercased as the text models' defaults are
    tfidf = TfidfVectorizer(tokenizer=tokens, lowercase=False, token_pattern=None, ngram_range=(1, 2), min_df=2,
                            sublinear_tf=True)  # fmt: skip
    return make_pipeline(tfidf, Ridge() if soft else LogisticRegression(max_iter=1000))


def baseline(data: Data) -> tuple[str, dict[str, dict[str, float]]]:
    """Fitted on ``data.splits["train"]``, tested on every test split: its name and metrics per test split."""
    texts, y = data.splits["train"]
    soft = y.is_floating_point()
    model = pipeline(soft).fit(texts, y.cpu().numpy())
    return NAMES[soft], {split: _metrics(model, data, split, soft) for split in data.test_splits}


def _metrics(model, data: Data, split: str, soft: bool) -> dict[str, float]:
    texts, y = data.splits[split]
    if soft:
        shares = torch.from_numpy(np.clip(model.predict(texts), 0, 1)).float().to(y.device)
        return text.scores(shares, data, split)
    p = torch.from_numpy(model.predict_proba(texts)).to(y.device)
    return text.metrics(common.logits_of_probabilities(p), data, split, {"loss": "soft_ce"})  # class labels: its NLL
