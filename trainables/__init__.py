"""The assignment models, one module per model family, and the registry that names them.

Every trainable is a plain-PyTorch module (no Ray, no W&B) with this protocol:

- ``DATASET``: the data set it trains on by default (a name in ``tunelab.data``).
- ``METRIC``, ``MODE``: the metric a search optimises by default and ``"max"`` or ``"min"``.
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

A model whose input is not an image (a GAN's generator takes noise) has an ``example_input()`` method that
returns the arguments of one forward call, for the report's layer table.
"""

from types import ModuleType

from trainables import cgan, cnn_classifier, conv_autoencoder, gan, vae

REGISTRY: dict[str, ModuleType] = {
    "cnn_classifier": cnn_classifier,
    "conv_autoencoder": conv_autoencoder,
    "vae": vae,
    "gan": gan,
    "cgan": cgan,
}


class UnknownTrainable(KeyError):
    pass


def get(name: str) -> ModuleType:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownTrainable(f"unknown trainable {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
