"""Protocol tests for every trainable in the registry, on a tiny in-memory data set.

Like timm's tests over its model registry: a new trainable gets them for free. The checks themselves, and the
tiny data set, are tunelab's (``tunelab.engine.checks``), which ``tunelab check FILE.py`` runs on a student's own
file.
"""

import pytest
import torch
from torch import nn

import trainables
from trainables import cnn_classifier, common, conv_autoencoder
from tunelab.data import Data
from tunelab.engine import checks
from tunelab.engine.checks import one_batch_config
from tunelab.trainable import protocol, training

NAMES = trainables.NAMES


@pytest.fixture
def data(request) -> Data:
    """The tiny data set shaped like the trainable's DATASET (``checks.tiny_data``); Fashion-MNIST-like images for a
    test of no trainable."""
    name = getattr(request.node, "callspec", None) and request.node.callspec.params.get("name")
    return checks.tiny_data(protocol.load_trainable(name) if name else "fashion_mnist")


@pytest.mark.parametrize("name", NAMES)
def test_declarations(name):
    module = protocol.load_trainable(name)  # checked against the protocol (tests/test_protocol.py)
    assert module.metric.startswith("val_") and "batch_size" in module.defaults


@pytest.mark.parametrize("check", checks.CHECKS, ids=lambda check: check.name)
@pytest.mark.parametrize("name", NAMES)
def test_check(name, check, data):
    """build, train_epoch, evaluate, gradients, save_restore and figures (``tunelab.engine.checks.CHECKS``)."""
    check(protocol.load_trainable(name), data)


@pytest.mark.parametrize("name", [t.name for t in protocol.registered() if t.ensembles])
def test_an_ensemble_averages_probabilities_and_is_scored_as_evaluate_scores(name, data):
    module = protocol.load_trainable(name)
    config = one_batch_config(module, data)
    members = [training.build(module, config, data, seed) for seed in (0, 1)]
    for parts in members:
        module.train_epoch(parts, data, config)
    logits = [module.outputs(parts, data, "test") for parts in members]
    assert module.metrics(logits[0], data, "test", config) == module.evaluate(members[0], data, "test")
    combine = module.ensemble([config, config], data)
    mean = torch.stack([logit.softmax(1) for logit in logits]).mean(0)
    assert torch.allclose(combine(logits).softmax(1), mean, atol=1e-6)
    alone = module.evaluate(members[0], data, "test")
    twice = module.metrics(combine(logits[:1] * 2), data, "test", config)
    assert twice.keys() == alone.keys() and twice == pytest.approx(alone, rel=1e-5)  # a model with itself is the model


@pytest.mark.parametrize("name", NAMES)
def test_unknown_choice_fails_at_build(name, data):
    module = protocol.load_trainable(name)
    with pytest.raises(ValueError, match="optimizer"):
        module.build({**one_batch_config(module, data), "optimizer": "lbfgs"}, data)


def test_autoencoder_baseline_is_the_assignments():
    baseline = {"width": 16, "depth": 3, "kernel_size": 3, "activation": "selu", "code_channels": 0}
    model = conv_autoencoder.make_model({**conv_autoencoder.DEFAULTS, **baseline, "upsample": "transpose"}, (1, 28, 28))
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)
    assert [m.out_channels for m in model.encoder if isinstance(m, nn.Conv2d)] == [16, 32, 64]
    assert [m.out_channels for m in model.decoder if isinstance(m, nn.ConvTranspose2d)] == [32, 16, 1]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.encoder) == 3
    assert sum(isinstance(m, nn.SELU) for m in model.modules()) == 5  # all convolutions but the output


@pytest.mark.parametrize("upsample", conv_autoencoder.UPSAMPLES)
@pytest.mark.parametrize("depth,kernel_size,code_channels", [(1, 3, 0), (2, 5, 8), (3, 5, 4)])
def test_autoencoder_restores_the_input_size(upsample, depth, kernel_size, code_channels):
    config = {**conv_autoencoder.DEFAULTS, "upsample": upsample, "depth": depth, "kernel_size": kernel_size}
    model = conv_autoencoder.make_model({**config, "code_channels": code_channels}, (1, 28, 28))
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 1, 28, 28)


@pytest.mark.parametrize("kind", common.AUGMENTS)
def test_classifier_augmentation_keeps_shape_and_dtype(kind, data):
    x = common.to_float(data.splits["train"][0])
    out = common.augment(x, kind, pad=cnn_classifier.DEFAULTS["crop_pad"])
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert 0 <= out.min() and out.max() <= 1
    if kind == "flip":
        assert all(torch.equal(o, i) or torch.equal(o, i.flip(2)) for o, i in zip(out, x))
    if kind.endswith("affine"):  # every image moved, each its own way
        same = x[:1].expand(8, -1, -1, -1)
        moved = common.augment(same, kind, pad=2)
        assert not any(torch.allclose(m, same[0]) for m in moved) and not torch.allclose(moved[0], moved[1])


@pytest.mark.parametrize("schedule", common.SCHEDULES)
def test_schedule_spans_the_configured_epochs(schedule):
    config = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}
    config |= {"schedule": schedule, "epochs": 3, "batch_size": 10}
    optimizer = common.make_optimizer(config, [nn.Parameter(torch.zeros(1))])
    scheduler = common.make_scheduler(config, optimizer, n_train=95)  # 10 steps per epoch
    lrs = []
    for _ in range(40):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert max(lrs) == pytest.approx(0.1)
    assert lrs[30:] == [lrs[30]] * 10  # held at its end value after the configured epochs
    if schedule in ("cosine", "onecycle"):
        assert lrs[30] == pytest.approx(0.0)
