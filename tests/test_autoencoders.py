"""The MNIST autoencoders: the assignments' baselines, pixel accuracy, the multi-task loss weight."""

import pytest
import torch
from torch import nn

from trainables import conv_autoencoder, mlp_autoencoder, multitask_ae, reconstruction, thought_vector_ae
from trainables.reconstruction import AutoEncoder
from tunelab.data import Data
from tunelab.spec import spaces


def baseline_model(experiment: str, module) -> nn.Module:
    spec = spaces.load_spec(experiment)
    return module.make_model(spec.config(spec.baseline), (1, 28, 28))


def test_mnist_mlp_baseline_is_the_exercises_network():
    model = baseline_model("mnist_mlp_ae", mlp_autoencoder)
    linear = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert linear == [(784, 100), (100, 30), (30, 100), (100, 784)]
    assert sum(isinstance(m, nn.SELU) for m in model.modules()) == 3  # every layer but the output
    assert isinstance(model.decoder[-2], nn.Linear)  # logits: the sigmoid lives in the loss
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)


def test_mnist_conv_baseline_is_the_exercises_network():
    model = baseline_model("mnist_conv_ae", conv_autoencoder)
    shapes, x = [], torch.rand(2, 1, 28, 28)
    for layer in [*model.encoder, *model.decoder]:
        x = layer(x)
        shapes.append((type(layer).__name__, tuple(x.shape[1:])))
    assert shapes == [
        ("Conv2d", (16, 28, 28)), ("SELU", (16, 28, 28)), ("MaxPool2d", (16, 14, 14)),
        ("Conv2d", (32, 14, 14)), ("SELU", (32, 14, 14)), ("MaxPool2d", (32, 7, 7)),
        ("Conv2d", (64, 7, 7)), ("SELU", (64, 7, 7)), ("MaxPool2d", (64, 3, 3)),
        ("ConvTranspose2d", (32, 7, 7)), ("SELU", (32, 7, 7)),
        ("ConvTranspose2d", (16, 14, 14)), ("SELU", (16, 14, 14)),
        ("ConvTranspose2d", (1, 28, 28)),
    ]  # fmt: skip
    assert all(m.kernel_size == (3, 3) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def test_thought_vector_is_256_tanh_units():
    model = mlp_autoencoder.make_model(thought_vector_ae.DEFAULTS, (1, 28, 28))
    codes = model.encoder(torch.rand(4, 1, 28, 28))
    assert codes.shape == (4, 256) and isinstance(model.encoder[-1], nn.Tanh)


class Dark(nn.Module):
    """A decoder whose every output pixel is (almost) 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, -10.0)


def test_pixel_accuracy_is_the_share_of_rounded_pixels_that_match():
    images = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    images[:, :, :14] = 255  # the top half bright: a dark reconstruction gets it wrong
    images[0, 0, 0, 0] = 127  # rounds to 0: right
    images[1, 0, 27, 0] = 128  # rounds to 1: wrong
    model = AutoEncoder(nn.Identity(), Dark(), "bce")
    m = reconstruction.batch_metrics(model, images, torch.zeros(2, dtype=torch.long))
    assert m["pixel_acc"].item() == pytest.approx((392 + 1 + 392 - 1) / (2 * 784))


def tiny_mnist(n: int = 16) -> Data:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=gen)
    split = (images, torch.randint(0, 10, (n,), generator=gen))
    return Data("mnist", {"train": split, "val": split}, [str(d) for d in range(10)], torch.device("cpu"))


@pytest.mark.parametrize("class_weight, still", [(0.0, "classifier"), (1.0, "decoder")])
def test_class_weight_shares_the_loss_between_the_tasks(class_weight, still):
    data = tiny_mnist()
    config = {**multitask_ae.DEFAULTS, "class_weight": class_weight, "batch_size": 16, "epochs": 1}
    parts = multitask_ae.build(config, data)
    model = parts["model"]
    before = {
        name: [p.detach().clone() for p in getattr(model, name).parameters()] for name in ("classifier", "decoder")
    }
    metrics = multitask_ae.train_epoch(parts, data, config)
    assert {"pixel_acc", "acc", "class_loss", "bce"} <= set(metrics)
    for name, params in before.items():
        unchanged = all(torch.equal(a, b) for a, b in zip(params, getattr(model, name).parameters()))
        assert unchanged == (name == still), f"class_weight {class_weight}: {name} {'un' if unchanged else ''}changed"
    with pytest.raises(ValueError, match="class_weight"):
        multitask_ae.build({**config, "class_weight": 1.5}, data)
