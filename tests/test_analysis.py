"""The classifier analysis of the report: penultimate features, t-SNE, activation maximisation."""

import pytest
import torch

from trainables import common, examples_net
from tunelab import data as datasets
from tunelab.data import Data
from tunelab.report import analysis
from tunelab.trainable import protocol


@pytest.fixture(scope="module")
def data(fixture_root) -> Data:
    """The generated fixture: class c is a bright square at its own place (see helpers.write_mnist_like)."""
    return datasets.load_dataset("fashion_mnist", fixture_root, "retrain")


@pytest.fixture(scope="module")
def model(data) -> torch.nn.Module:
    """pytorch/examples' network trained on the fixture for one epoch (it learns it perfectly)."""
    torch.manual_seed(0)
    config = {**examples_net.DEFAULTS, "epochs": 1}
    parts = examples_net.build(config, data)
    examples_net.train_epoch(parts, data, config)
    return parts["model"].eval()


def test_penultimate_features_are_the_input_of_the_last_linear_layer(model, data):
    x = data.splits["test"][0][:5]
    features = analysis.penultimate_features(model, x, common.predict)
    with torch.no_grad():
        expected = model[:-1](common.to_float(x))  # everything before fc2: fc1, ReLU, dropout (off in eval)
    assert features.shape == (5, 128) and torch.allclose(features, expected)


def test_activation_maximisation_draws_each_class(model):
    images = analysis.activation_maximisation(model, (1, 28, 28), 10, torch.device("cpu"))
    assert images.shape == (10, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    with torch.no_grad():
        assert (model(images).argmax(1) == torch.arange(10)).all()
    for c, image in enumerate(images[:, 0]):
        r, k = divmod(c, 5)  # where the fixture draws class c's square
        assert image[4 + 10 * r : 12 + 10 * r, 1 + 5 * k : 6 + 5 * k].mean() > 0.8 > 0.4 > image.mean()


def test_section_writes_the_figures_and_per_class_accuracy(model, data, tmp_path):
    seen = []  # images the trainable's own predict was given (transfer's reuses cached backbone outputs)

    def predict(model, x):
        seen.append(len(x))
        return common.predict(model, x)

    blocks = analysis.section(model, data, tmp_path, predict)
    assert seen == [len(data.splits["test"][1]), min(analysis.TSNE_SAMPLE, len(data.splits["train"][1]))]
    images = {rest[1].name for kind, *rest in blocks if kind == "img"}
    assert images == {"tsne.png", "activation_maximisation.png"}
    for name in images:
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG")
    table = next(rest[0] for kind, *rest in blocks if kind == "table")
    pred = common.predict(model, data.splits["test"][0]).argmax(1)
    y = data.splits["test"][1]
    expected = [(pred[y == c] == c).float().mean().item() for c in range(10)]
    assert table["test accuracy"].tolist() == pytest.approx(expected)
    assert table["test images"].sum() == len(y) and min(expected) > 0.9


@pytest.mark.parametrize("name", [t.name for t in protocol.registered() if t.image_classifier])
def test_what_declares_itself_an_image_classifier_maps_images_to_class_logits(name, data):
    module = protocol.load_trainable(name)
    model = module.build({**module.defaults, "epochs": 1}, data)["model"]
    assert common.predict(model, data.splits["test"][0][:3]).shape == (3, len(data.classes))
    assert isinstance([m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1], torch.nn.Linear)
