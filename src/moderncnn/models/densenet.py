"""DenseNet (Huang, Liu, van der Maaten and Weinberger, 2017, "Densely connected convolutional networks").

Inside a dense block every layer receives the concatenation of the block input and all earlier layers'
outputs, and adds ``growth_rate`` new channels. A layer is BatchNorm-ReLU-conv3x3, optionally preceded by
a BatchNorm-ReLU-conv1x1 "bottleneck" to ``bn_size * growth_rate`` channels (DenseNet-B). Between blocks,
a transition layer (BatchNorm-ReLU-conv1x1-avgpool2x2) halves the channels (DenseNet-C) and resolution.

* ``densenet121/161/169/201``: torchvision's architecture (bottlenecks with ``bn_size`` 4, a 7x7/2 stem
  with 3x3/2 max pool). Module names match torchvision's
  (``features.denseblock1.denselayer1.norm1``, ``features.transition1``, ``features.norm5``, ``classifier``).
* ``densenet_d2l`` (D2L 8.7): the textbook's DenseNet: the ResNet stem, four dense blocks of four plain
  (no bottleneck) layers with growth rate 32, halving transitions, convolutions with bias.
* ``densenet_uva``: the UvA tutorial 5's DenseNet-BC for 32 px images: a 3x3 stem with bias, dense
  blocks of [6, 6, 6, 6] bottleneck layers, ``bn_size`` 2, growth rate 16; 239,146 parameters. The
  tutorial concatenates a layer's output *before* its input; here it comes after, as in torchvision
  and the book, which only permutes channels and changes nothing that can be learned.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from moderncnn.errors import ModelError
from moderncnn.models._registry import register_model
from moderncnn.models.layers import init_kaiming


class DenseLayer(nn.Module):
    """[BN-ReLU-conv1x1 to ``bn_size * growth_rate``] → BN-ReLU-conv3x3 to ``growth_rate`` new channels.

    With ``bn_size=None`` there is no bottleneck and the 3x3 convolution is ``conv1`` (the textbook's layer).
    """

    def __init__(
        self, in_channels: int, growth_rate: int, bn_size: int | None = 4, drop_rate: float = 0.0, bias: bool = False
    ):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        if bn_size is None:
            self.conv1 = nn.Conv2d(in_channels, growth_rate, kernel_size=3, padding=1, bias=bias)
            self.norm2 = self.relu2 = self.conv2 = None
        else:
            self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, kernel_size=1, bias=bias)
            self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=bias)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, features: list[Tensor]) -> Tensor:
        out = self.conv1(self.relu1(self.norm1(torch.cat(features, dim=1))))
        if self.conv2 is not None:
            out = self.conv2(self.relu2(self.norm2(out)))
        return self.dropout(out)


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers (``denselayer1``...), each seeing every earlier output; returns all concatenated."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, **layer_kwargs):
        super().__init__()
        for i in range(num_layers):
            self.add_module(
                f"denselayer{i + 1}", DenseLayer(in_channels + i * growth_rate, growth_rate, **layer_kwargs)
            )

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 to ``out_channels``, then 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = False):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=bias)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """Stem, dense blocks with halving transitions between them, BN, ReLU, global average pool, ``classifier``.

    Args:
        growth_rate: channels each dense layer adds.
        block_config: dense layers per block.
        num_init_features: channels out of the stem.
        bn_size: bottleneck width as a multiple of ``growth_rate``; ``None`` for no bottleneck.
        stem: ``"imagenet"`` (7x7/2 conv, BN, ReLU, 3x3/2 max pool) or ``"cifar"`` (one 3x3 conv).
        bias: give the convolutions a bias (the textbook's and the UvA stem's do).
        drop_rate: dropout after each dense layer.
        num_classes: number of output logits.
        in_channels: input channels.
    """

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, ...] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int | None = 4,
        stem: str = "imagenet",
        bias: bool = False,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_channels: int = 3,
    ):
        super().__init__()
        if stem == "imagenet":
            layers = OrderedDict(
                conv0=nn.Conv2d(in_channels, num_init_features, kernel_size=7, stride=2, padding=3, bias=bias),
                norm0=nn.BatchNorm2d(num_init_features),
                relu0=nn.ReLU(inplace=True),
                pool0=nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        elif stem == "cifar":
            # No BN-ReLU here: every dense layer starts with its own.
            layers = OrderedDict(conv0=nn.Conv2d(in_channels, num_init_features, kernel_size=3, padding=1))
        else:
            raise ModelError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            layers[f"denseblock{i + 1}"] = DenseBlock(
                num_layers, channels, growth_rate, bn_size=bn_size, drop_rate=drop_rate, bias=bias
            )
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                layers[f"transition{i + 1}"] = Transition(channels, channels // 2, bias=bias)
                channels //= 2
        layers["norm5"] = nn.BatchNorm2d(channels)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Linear(channels, num_classes)
        init_kaiming(self, mode="fan_in")

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.features(x))
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


# The arguments of each registered DenseNet: torchvision's four (growth rate, dense layers per block, stem channels),
# the textbook's (plain layers, convolutions with bias) and the UvA tutorial's DenseNet-BC for 32 px images.
ARCHS = {
    "densenet121": {"growth_rate": 32, "block_config": (6, 12, 24, 16), "num_init_features": 64},
    "densenet161": {"growth_rate": 48, "block_config": (6, 12, 36, 24), "num_init_features": 96},
    "densenet169": {"growth_rate": 32, "block_config": (6, 12, 32, 32), "num_init_features": 64},
    "densenet201": {"growth_rate": 32, "block_config": (6, 12, 48, 32), "num_init_features": 64},
    "densenet_d2l": {
        "growth_rate": 32,
        "block_config": (4, 4, 4, 4),
        "num_init_features": 64,
        "bn_size": None,
        "bias": True,
    },
    "densenet_uva": {
        "growth_rate": 16,
        "block_config": (6, 6, 6, 6),
        "num_init_features": 32,
        "bn_size": 2,
        "stem": "cifar",
    },
}


def _densenet(name: str, **kwargs) -> DenseNet:
    return DenseNet(**{**ARCHS[name], **kwargs})


def _cfg(**facts) -> dict:
    """The facts the family's networks share (the torchvision ones' by default), then each network's own."""
    return {
        "family": "densenet",
        "variant": "torchvision",
        "input_size": 224,
        "min_input_size": 29,
        "in_channels": 3,
        "classifier": "classifier",
        "feature_layer": "features.norm5",
        **facts,
    }


# The registry's facts. ``feature_layer``: the BatchNorm after the last dense block (the forward applies a ReLU to
# its output, then global average pooling).
default_cfgs = {
    "densenet121": _cfg(source="Huang et al. 2017 (DenseNet-BC-121); torchvision.models.densenet121"),
    "densenet161": _cfg(source="Huang et al. 2017 (DenseNet-BC-161); torchvision.models.densenet161"),
    "densenet169": _cfg(source="Huang et al. 2017 (DenseNet-BC-169); torchvision.models.densenet169"),
    "densenet201": _cfg(source="Huang et al. 2017 (DenseNet-BC-201); torchvision.models.densenet201"),
    "densenet_d2l": _cfg(
        variant="textbook", input_size=96, in_channels=1, source="Huang et al. 2017; Dive into Deep Learning 8.7"
    ),
    "densenet_uva": _cfg(
        variant="cifar", input_size=32, min_input_size=8, source="UvA deep learning tutorial 5 (Lippe 2022), DenseNet"
    ),
}


@register_model
def densenet121(**kwargs) -> DenseNet:
    return _densenet("densenet121", **kwargs)


@register_model
def densenet161(**kwargs) -> DenseNet:
    return _densenet("densenet161", **kwargs)


@register_model
def densenet169(**kwargs) -> DenseNet:
    return _densenet("densenet169", **kwargs)


@register_model
def densenet201(**kwargs) -> DenseNet:
    return _densenet("densenet201", **kwargs)


@register_model
def densenet_d2l(**kwargs) -> DenseNet:
    return _densenet("densenet_d2l", **kwargs)


@register_model
def densenet_uva(**kwargs) -> DenseNet:
    return _densenet("densenet_uva", **kwargs)
