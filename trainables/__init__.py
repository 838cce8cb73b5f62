"""The assignment models, one module per model family, and the registry that names them.

Each registered module is a trainable: plain PyTorch (no Ray, no W&B) that follows the protocol in
``tunelab/trainable/protocol.py`` (``DATASET``, ``METRIC``, ``MODE``, ``DEFAULTS``, ``build``, ``train_epoch``,
``evaluate``, ``figures`` and optional hooks). The harness loads them through
``tunelab.trainable.protocol.load_trainable(name)``, which checks them; the other modules here hold what several
trainables share (``common``, ``text``, ``reconstruction``, ...).
"""

import importlib
from types import ModuleType

# the module of each name is imported when a search, a retrain or a report first asks for it: a worker that
# trains one model does not import the others (nor torchvision, which the transfer models need)
NAMES = ("cgan", "cnn_classifier", "conv_autoencoder", "examples_net", "gan", "mlp_autoencoder", "multitask_ae",
         "text_cnn", "text_rnn", "thought_vector_ae", "transfer", "vae")  # fmt: skip


def get(name: str) -> ModuleType:
    """The module of a registered name (``tunelab.trainable.protocol.load_trainable`` checks the name and the
    module)."""
    return importlib.import_module(f"trainables.{name}")
