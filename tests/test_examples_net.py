"""examples_net: pytorch/examples' MNIST network exactly, and its ablation variants."""

import math

import pytest
import torch
from torch import nn

from trainables import common, examples_net
from tunelab import data as datasets


def config(**changes) -> dict:
    return {**examples_net.DEFAULTS, "epochs": 1, **changes}


def test_the_network_is_pytorch_examples():
    model = examples_net.make_model(False, (1, 28, 28), 10)
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()}
    assert {k: v for k, v in counts.items() if v} == {"conv1": 320, "conv2": 18_496, "fc1": 1_179_776, "fc2": 1_290}
    assert sum(counts.values()) == 1_199_882
    assert [name for name, m in model.named_children() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Dropout))] == [
        "conv1", "conv2", "dropout1", "fc1", "dropout2", "fc2"]  # fmt: skip
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.25, 0.5]
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_batch_norm_variant_normalises_both_convolutions_and_fc1():
    model = examples_net.make_model(True, (1, 28, 28), 10)
    norms = [
        (name, m.num_features) for name, m in model.named_children() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    assert norms == [("bn1", 32), ("bn2", 64), ("bn3", 128)]
    assert sum(p.numel() for p in model.parameters()) == 1_199_882 + 2 * (32 + 64 + 128)


def test_unknown_variant(fixture_root):
    data = datasets.load_dataset("fashion_mnist", fixture_root, "search")
    with pytest.raises(ValueError, match="variant must be one of baseline, augment, batch_norm, finetune"):
        examples_net.build(config(variant="dropout"), data)


def test_finetune_starts_from_the_mnist_weights_and_trains_only_fc2(fixture_root, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path))  # a cold cache: this test pretrains
    data = datasets.load_dataset("fashion_mnist", fixture_root, "search")
    cfg = config(variant="finetune", pretrain_epochs=2)
    torch.manual_seed(1)
    parts = examples_net.build(cfg, data)
    after_cold_build = torch.rand(1)

    mnist = datasets.load_dataset("mnist", fixture_root, "search")
    pretrained = examples_net.build(config(), mnist)
    pretrained["model"].load_state_dict(examples_net.mnist_weights(data, 2))
    assert examples_net.evaluate(pretrained, mnist, "val")["acc"] > 0.8  # it learnt MNIST (chance: 0.1)
    for name, tensor in pretrained["model"].state_dict().items():
        assert torch.equal(parts["model"].state_dict()[name], tensor), name

    trainable = {n for n, p in parts["model"].named_parameters() if p.requires_grad}
    assert trainable == {"fc2.weight", "fc2.bias"}
    before = {n: p.detach().clone() for n, p in parts["model"].named_parameters()}
    metrics = examples_net.train_epoch(parts, data, cfg)
    assert all(math.isfinite(v) for v in metrics.values())
    changed = {n for n, p in parts["model"].named_parameters() if not torch.equal(before[n], p)}
    assert changed == {"fc2.weight", "fc2.bias"}

    def no_training(*args):
        raise AssertionError("pretrained again although the weights are cached")

    monkeypatch.setattr(examples_net, "train_epoch", no_training)
    torch.manual_seed(1)
    examples_net.build(cfg, data)
    assert torch.equal(torch.rand(1), after_cold_build)  # the same random stream with a cold or warm cache


def test_augment_variant_trains_on_transformed_images(fixture_root):
    data = datasets.load_dataset("fashion_mnist", fixture_root, "search", subset=0.2)
    parts = examples_net.build(config(variant="augment"), data)
    metrics = examples_net.train_epoch(parts, data, config(variant="augment"))
    assert all(math.isfinite(v) for v in metrics.values())

    batch = common.to_float(data.splits["train"][0][:1]).expand(16, -1, -1, -1)  # one image, 16 times
    torch.manual_seed(0)
    for name, transform in examples_net.augmentations((28, 28), p=0.5).items():
        draws = transform(batch)
        assert draws.shape == batch.shape and 0 <= draws.min() and draws.max() <= 1, name
        changed = (draws != batch).flatten(1).any(1)
        assert 0 < changed.sum() < len(batch), f"{name}: each image of a batch is transformed or not on its own"
        distinct = len(draws[changed].flatten(1).unique(dim=0))
        assert distinct > 1 or name == "horizontal flip", f"{name}: one draw per image"
