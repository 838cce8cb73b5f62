"""The assignment models, one module per model family, and the registry that names them.

Every trainable is a plain-PyTorch module (no Ray, no W&B) with this protocol:

- ``DATASET``: the data set it trains on by default (a name in ``tunelab.data``).
- ``METRIC``, ``MODE``: the metric a search optimises by default and ``"max"`` or ``"min"``.
- ``EXTRA_DATASETS`` (optional): other data sets it reads (e.g. to pretrain on), checked before a search.
- ``DEFAULTS``: every hyperparameter with a typed default; a search space may override some of them,
  and a key that is not here is an error.
- ``build(config, data) -> parts``: a dict of named objects that have ``state_dict()`` and
  ``load_state_dict()`` (``parts["model"]`` is the ``nn.Module`` that is evaluated and saved; optimizers
  and schedulers sit beside it). Checkpoints save and restore all parts.
- ``train_epoch(parts, data, config) -> metrics``: one pass over ``data.splits["train"]``; returns floats
  such as ``{"loss": ..., "acc": ...}`` (the harness prefixes them with ``train_``).
- ``evaluate(parts, data, split) -> metrics``: metrics on ``data.splits[split]`` (prefixed with the split's
  name: ``val_acc``, ``test_loss``, ...).
- ``figures(parts, data, outdir) -> {caption: path}``: the report's model-specific PNGs, drawn from
  ``data.splits["test"]``.

Optional:

- ``IMAGE_CLASSIFIER = True``: ``parts["model"]`` maps uint8 images to class logits through a last linear
  layer; the report then adds the classifier analysis (t-SNE, activation maximisation, confusion matrix).
- ``predict(model, x) -> logits``: how the analysis runs such a model on uint8 images ``x`` (default:
  ``trainables.common.predict``; transfer's reuses the frozen backbone's cached outputs).
- ``compare(models, data, outdir) -> {caption: path}``: figures that put the same test images through
  several models (``{run name: model}``), for an experiment's ``compare_with``.
- ``example_input(parts, data)``: what the model takes, for layer tables (default: one test image).
- ``predict_proba(parts, data, split) -> (probabilities, labels)``: numpy arrays, for ``tunelab compare``.
- ``outputs``, ``metrics`` and ``ensemble``, a classifier's, for ``tunelab retrain --ensemble``:
  ``outputs(parts, data, split) -> logits`` (N x outputs) and ``metrics(logits, data, split, config) -> metrics``,
  so that ``evaluate`` is ``metrics`` of ``outputs`` (``config``: the model's, for how its logits are read);
  ``ensemble(configs, data) -> combine``, where ``combine(list of logits)`` gives the logits of the models' mean
  predicted probabilities (for a softmax, their log: ``common.mean_softmax_logits``), which ``metrics`` then scores.
  It raises ``tunelab.UserError`` where models of these configs do not average, before any is trained.
- ``classical_baseline(data) -> (name, {test split: metrics})``: a simple non-neural model fitted on
  ``data.splits["train"]`` and tested on every test split, with metrics named as ``evaluate``'s (text: TF-IDF and a
  linear model, ``trainables.tfidf``); retrain reports it beside the retrained models.
- ``prepare(values, data_dir)``: called before a search with every value each hyperparameter may take
  (a list per key); raises ``tunelab.UserError`` for what cannot work (e.g. missing pretrained weights).
"""

import importlib
from types import ModuleType

# the module of each name is imported when a search, a retrain or a report first asks for it: a worker that
# trains one model does not import the others (nor torchvision, which the transfer models need)
NAMES = ("cgan", "cnn_classifier", "conv_autoencoder", "examples_net", "gan", "mlp_autoencoder", "multitask_ae",
         "text_cnn", "text_rnn", "thought_vector_ae", "transfer", "vae")  # fmt: skip


class UnknownTrainable(KeyError):
    pass


def get(name: str) -> ModuleType:
    if name not in NAMES:
        raise UnknownTrainable(f"unknown trainable {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"trainables.{name}")
