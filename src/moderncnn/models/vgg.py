"""VGG (Simonyan and Zisserman, 2015, "Very deep convolutional networks for large-scale image recognition").

A VGG network is a list of blocks; block ``(n, c)`` is ``n`` 3x3 convolutions with ``c`` channels, each
followed by a ReLU, then a 2x2 max pool that halves the resolution. The paper's configurations A, B, D
and E are VGG-11, -13, -16 and -19; all have five blocks and the same 4096-4096-classes head.

* ``vgg11`` ... ``vgg19`` and ``*_bn``: torchvision's architecture (BatchNorm after each convolution in the
  ``_bn`` versions, which the paper does not have; 7x7 adaptive average pooling before the head, so any
  input of at least 32 px works). Module names match torchvision's (``features.N``, ``classifier.N``).
* ``vgg_d2l`` (D2L 8.2): the textbook's VGG, any ``conv_arch`` (default VGG-11), with each block kept as
  its own ``nn.Sequential`` as the book prints them and no pooling before the head, which is therefore
  sized for one input size (224 by default). ``width_ratio=4`` divides every block's channels by 4:
  the book's "small VGG" for Fashion-MNIST. The head keeps its 4096 units, as in the book.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from moderncnn.errors import ModelError
from moderncnn.models._registry import register_model
from moderncnn.models.layers import dense_head, init_kaiming

Arch = tuple[tuple[int, int], ...]

# (number of convolutions, channels) per block.
CONV_ARCHS: dict[str, Arch] = {
    "vgg11": ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
    "vgg13": ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),
    "vgg16": ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
    "vgg19": ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),
}


def vgg_block(num_convs: int, in_channels: int, out_channels: int, batch_norm: bool = False) -> list[nn.Module]:
    """``num_convs`` 3x3 convolutions (each with optional BatchNorm and a ReLU), then a 2x2 max pool."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        norm = [nn.BatchNorm2d(out_channels)] if batch_norm else []
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), *norm, nn.ReLU(inplace=True)]
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return layers


def vgg_blocks(arch: Arch, in_channels: int, batch_norm: bool = False) -> list[list[nn.Module]]:
    """One layer list per block of ``arch``."""
    blocks = []
    for num_convs, out_channels in arch:
        blocks.append(vgg_block(num_convs, in_channels, out_channels, batch_norm))
        in_channels = out_channels
    return blocks


class VGG(nn.Module):
    """torchvision's VGG: ``features`` (all blocks in one flat ``nn.Sequential``) → 7x7 pool → ``classifier``."""

    def __init__(
        self,
        arch: Arch,
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.features = nn.Sequential(*itertools.chain(*vgg_blocks(arch, in_channels, batch_norm)))
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(*dense_head(arch[-1][1] * 7 * 7, num_classes, dropout))
        init_kaiming(self, linear_std=0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class VGGD2L(nn.Sequential):
    """The textbook VGG: one ``nn.Sequential`` per block, ``Flatten``, then the head's seven layers.

    Args:
        conv_arch: ``(num_convs, channels)`` per block; default VGG-11.
        width_ratio: divide every block's channel count by this (the book's small VGG uses 4).
        num_classes: number of output logits.
        in_channels: input channels.
        input_size: side of the square input the head is sized for.
        dropout: dropout probability in the head.
    """

    def __init__(
        self,
        conv_arch: Arch = CONV_ARCHS["vgg11"],
        width_ratio: int = 1,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 224,
        dropout: float = 0.5,
    ):
        if width_ratio < 1 or any(c % width_ratio for _, c in conv_arch):
            raise ModelError(f"width_ratio must be a positive divisor of every block's channels, got {width_ratio}")
        side = input_size // 2 ** len(conv_arch)
        if side < 1:
            raise ModelError(f"vgg_d2l with {len(conv_arch)} blocks needs input_size >= {2 ** len(conv_arch)}")
        arch = tuple((n, c // width_ratio) for n, c in conv_arch)
        blocks = [nn.Sequential(*block) for block in vgg_blocks(arch, in_channels)]
        super().__init__(*blocks, nn.Flatten(), *dense_head(arch[-1][1] * side * side, num_classes, dropout))


def _cfg(**facts) -> dict:
    """The facts the family's networks share (the torchvision ones' by default), then each network's own."""
    return {
        "family": "vgg",
        "variant": "torchvision",
        "input_size": 224,
        "min_input_size": 32,
        "in_channels": 3,
        "classifier": "classifier.6",
        "feature_layer": "features",
        **facts,
    }


# The registry's facts. ``feature_layer``: the trunk, up to the last block's max pool.
_PAPER = "Simonyan & Zisserman 2015"
default_cfgs = {
    "vgg11": _cfg(source=f"{_PAPER} (config A); torchvision.models.vgg11"),
    "vgg11_bn": _cfg(source=f"{_PAPER} (config A) + BatchNorm; torchvision.models.vgg11_bn"),
    "vgg13": _cfg(source=f"{_PAPER} (config B); torchvision.models.vgg13"),
    "vgg13_bn": _cfg(source=f"{_PAPER} (config B) + BatchNorm; torchvision.models.vgg13_bn"),
    "vgg16": _cfg(source=f"{_PAPER} (config D); torchvision.models.vgg16"),
    "vgg16_bn": _cfg(source=f"{_PAPER} (config D) + BatchNorm; torchvision.models.vgg16_bn"),
    "vgg19": _cfg(source=f"{_PAPER} (config E); torchvision.models.vgg19"),
    "vgg19_bn": _cfg(source=f"{_PAPER} (config E) + BatchNorm; torchvision.models.vgg19_bn"),
    # The last of the default five blocks (a ``conv_arch`` of another length moves it).
    "vgg_d2l": _cfg(
        variant="textbook",
        in_channels=1,
        classifier="12",
        feature_layer="4",
        fixed_input_size=True,
        source=f"{_PAPER}; Dive into Deep Learning 8.2",
    ),
}


def _vgg(name: str, batch_norm: bool, options: dict) -> VGG:
    # The variant's batch_norm is a default, which an option may override.
    return VGG(CONV_ARCHS[name], **{"batch_norm": batch_norm, **options})


@register_model
def vgg11(**kwargs) -> VGG:
    return _vgg("vgg11", False, kwargs)


@register_model
def vgg11_bn(**kwargs) -> VGG:
    return _vgg("vgg11", True, kwargs)


@register_model
def vgg13(**kwargs) -> VGG:
    return _vgg("vgg13", False, kwargs)


@register_model
def vgg13_bn(**kwargs) -> VGG:
    return _vgg("vgg13", True, kwargs)


@register_model
def vgg16(**kwargs) -> VGG:
    return _vgg("vgg16", False, kwargs)


@register_model
def vgg16_bn(**kwargs) -> VGG:
    return _vgg("vgg16", True, kwargs)


@register_model
def vgg19(**kwargs) -> VGG:
    return _vgg("vgg19", False, kwargs)


@register_model
def vgg19_bn(**kwargs) -> VGG:
    return _vgg("vgg19", True, kwargs)


@register_model
def vgg_d2l(**kwargs) -> VGGD2L:
    return VGGD2L(**kwargs)
