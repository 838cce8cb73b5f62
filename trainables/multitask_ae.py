"""The multi-task "thought vector" autoencoder: the thought-vector autoencoder plus a softmax classifier that
reads only the thought vector, trained on (1 - class_weight) * reconstruction loss + class_weight *
cross-entropy. Its metrics are pixel accuracy (as ``thought_vector_ae``) and classification accuracy.
"""

from torch import nn

from trainables import mlp_autoencoder, reconstruction, thought_vector_ae
from trainables.reconstruction import AutoEncoder, evaluate, reconstruct, train_epoch  # noqa: F401 (shared)
from trainables.thought_vector_ae import figures  # noqa: F401 (shared)
from tunelab.data import Data

DATASET = "mnist"
METRIC = "val_pixel_acc"
MODE = "max"

DEFAULTS: dict[str, int | float | bool | str] = thought_vector_ae.DEFAULTS | {  # the others are documented there
    "class_weight": 0.5,  # share of the classification loss in the training loss, in [0, 1]
}
CHOICES = thought_vector_ae.CHOICES
RANGES = {**thought_vector_ae.RANGES, "class_weight": "[0, 1]"}
# and the classifier's
METRICS = (*reconstruction.METRICS, "val_acc", "val_class_loss", "train_acc", "train_class_loss")


def build(config: dict, data: Data) -> dict:
    mlp_autoencoder.check(config)
    if not 0 <= config["class_weight"] <= 1:
        raise ValueError(f"class_weight must be in [0, 1], not {config['class_weight']}")
    x, _ = data.splits["train"]
    ae = mlp_autoencoder.make_model(config, x.shape[1:])
    classifier = nn.Linear(config["code"], len(data.classes))  # its softmax lives in the cross-entropy
    model = AutoEncoder(ae.encoder, ae.decoder, config["loss"], classifier, config["class_weight"])
    return reconstruction.training_parts(model.to(data.device), config, len(x))
