"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012, "ImageNet classification with deep CNNs").

* ``alexnet_d2l`` (D2L 8.1): the textbook's single-tower AlexNet for 1-channel 224 px Fashion-MNIST:
  convolutions of 96-256-384-384-256 channels (11x11 stride 4, 5x5, then three 3x3), three 3x3/2 max
  pools, and a 6400-4096-4096-classes head with dropout after each hidden layer. No local response
  normalisation. Its head is sized for one input size (224 by default; ``input_size=N`` changes it).
* ``alexnet``: torchvision's architecture, which follows Krizhevsky's later "one weird trick" paper
  (2014) rather than the 2012 one: 64-192-384-256-256 channels, adaptive average pooling to 6x6 (so any
  input of at least 63 px works) and dropout *before* each hidden ``Linear``. Module names match
  torchvision's (``features.N``, ``avgpool``, ``classifier.N``), so its ImageNet weights load.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from moderncnn.errors import ModelError
from moderncnn.models._registry import register_model
from moderncnn.models.layers import conv_output_size, dense_head

# (out_channels, kernel, stride, padding) per convolution; "M" is a 3x3 stride-2 max pool.
ConvCfg = list[tuple[int, int, int, int] | str]

CFGS: dict[str, ConvCfg] = {
    "d2l": [(96, 11, 4, 1), "M", (256, 5, 1, 2), "M", (384, 3, 1, 1), (384, 3, 1, 1), (256, 3, 1, 1), "M"],
    "torchvision": [(64, 11, 4, 2), "M", (192, 5, 1, 2), "M", (384, 3, 1, 1), (256, 3, 1, 1), (256, 3, 1, 1), "M"],
}


def make_features(cfg: ConvCfg, in_channels: int) -> list[nn.Module]:
    """The convolutional trunk: each convolution followed by a ReLU, "M" entries as max pools."""
    layers: list[nn.Module] = []
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
        else:
            out_channels, kernel, stride, padding = item
            layers += [nn.Conv2d(in_channels, out_channels, kernel, stride, padding), nn.ReLU(inplace=True)]
            in_channels = out_channels
    return layers


def features_side(cfg: ConvCfg, size: int) -> int:
    """Side of the trunk's output for a ``size`` x ``size`` input."""
    for item in cfg:
        size = conv_output_size(size, 3, 2) if item == "M" else conv_output_size(size, *item[1:])
    return size


class AlexNetD2L(nn.Sequential):
    """The textbook AlexNet as one flat ``nn.Sequential``, so a summary prints the book's 21 rows."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 224, dropout: float = 0.5):
        side = features_side(CFGS["d2l"], input_size)
        if side < 1:
            raise ModelError(f"alexnet_d2l needs input_size of at least 65, got {input_size}")
        super().__init__(
            *make_features(CFGS["d2l"], in_channels),
            nn.Flatten(),
            *dense_head(256 * side * side, num_classes, dropout),
        )


class AlexNet(nn.Module):
    """torchvision's AlexNet: ``features`` → 6x6 adaptive average pool → ``classifier``."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(*make_features(CFGS["torchvision"], in_channels))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _cfg(**facts) -> dict:
    """The facts the family's networks share, then each network's own."""
    return {"family": "alexnet", "input_size": 224, **facts}


# The registry's facts. ``feature_layer``: the last max pool of the trunk, whose map is flattened or pooled to 6x6.
default_cfgs = {
    "alexnet_d2l": _cfg(
        variant="textbook",
        min_input_size=65,
        in_channels=1,
        classifier="20",
        feature_layer="12",
        fixed_input_size=True,
        source="Krizhevsky et al. 2012; Dive into Deep Learning 8.1",
    ),
    "alexnet": _cfg(
        variant="torchvision",
        min_input_size=63,
        in_channels=3,
        classifier="classifier.6",
        feature_layer="features",
        source="Krizhevsky 2014, 'One weird trick'; torchvision.models.alexnet",
    ),
}


@register_model
def alexnet_d2l(**kwargs) -> AlexNetD2L:
    return AlexNetD2L(**kwargs)


@register_model
def alexnet(**kwargs) -> AlexNet:
    return AlexNet(**kwargs)
