"""CIFAR ResNets (He et al., 2016, section 4.2) and the UvA tutorial's ResNets, for 32 px images.

The paper's CIFAR networks are a 3x3 convolution with 16 channels, three stages of ``n`` basic blocks
with 16, 32 and 64 channels (the first block of stages 2 and 3 halves the resolution), global average
pooling and a ``Linear``: ``6n + 2`` layers, so ResNet-20/32/44/56/110 have n = 3/5/7/9/18.

Shortcuts where the shape changes:

* ``"zeropad"`` (the paper's option A, the default): the identity, subsampled by 2 and padded with
  zero channels. It adds no parameters: ResNet-20 has 0.27M, ResNet-110 1.7M, as in the paper's table.
* ``"projection"`` (option B): a strided 1x1 convolution with BatchNorm (before it, in a pre-activation
  network: BatchNorm, ReLU, then the 1x1 convolution, as the UvA tutorial does).
* ``"conv"``: a strided 1x1 convolution with a bias and no BatchNorm, as the UvA tutorial's plain ResNet.
* ``"none"``: no shortcuts at all, in any block: the paper's "plain" networks (plain-20 ... plain-110, section 4.2
  and Fig. 6), whose training error grows with depth; the same layers and parameters as option A.

``preact=True`` builds the pre-activation network of He et al., "Identity mappings in deep residual
networks" (2016): pre-activation blocks, a bare convolution as the stem, and BatchNorm + ReLU before
the pooling. ``resnet_uva`` and ``preact_resnet_uva`` are the UvA deep-learning tutorial 5's networks:
ResNet-20's layout ([3, 3, 3] blocks x [16, 32, 64] channels) with the tutorial's shortcuts and, for
the pre-activation one, no BatchNorm + ReLU before the pooling (272,378 and 272,250 parameters).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from moderncnn.errors import ModelError
from moderncnn.models._registry import register_model
from moderncnn.models.layers import init_kaiming
from moderncnn.models.resnet import BasicBlock, PreActBlock

SHORTCUTS = ("zeropad", "projection", "conv", "none")


class ZeroPadShortcut(nn.Module):
    """The paper's option A: take every ``stride``-th pixel and append zero channels up to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return nn.functional.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


class PlainBlock(BasicBlock):
    """A :class:`BasicBlock` without its shortcut: ``relu(bn2(conv2(relu(bn1(conv1(x))))))``, a plain net's block."""

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


def make_shortcut(kind: str, in_channels: int, out_channels: int, stride: int, preact: bool) -> nn.Module:
    """The shortcut of a block that changes shape (see the module docstring for the kinds)."""
    if kind == "zeropad":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    if kind == "conv":
        return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride)
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
    if preact:
        return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True), conv)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels))


class CifarResNet(nn.Module):
    """ResNet for 32 px images: 3x3 stem, one stage per entry of ``layers``/``widths``, pool, ``fc``.

    Args:
        layers: basic blocks per stage.
        widths: channels per stage.
        num_classes: number of output logits.
        in_channels: input channels.
        preact: use pre-activation blocks.
        shortcut: ``"zeropad"``, ``"projection"``, ``"conv"`` or ``"none"`` (a plain network).
        final_norm: BatchNorm + ReLU before the pooling in a pre-activation network (default: ``preact``).
        init_mode: Kaiming initialisation mode (``"fan_out"``; the UvA tutorial uses ``"fan_in"``).
    """

    def __init__(
        self,
        layers: tuple[int, ...] = (3, 3, 3),
        widths: tuple[int, ...] = (16, 32, 64),
        num_classes: int = 10,
        in_channels: int = 3,
        preact: bool = False,
        shortcut: str = "zeropad",
        final_norm: bool | None = None,
        init_mode: str = "fan_out",
    ):
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ModelError(f"shortcut must be one of {', '.join(SHORTCUTS)}; got {shortcut!r}")
        if shortcut == "none" and preact:
            raise ModelError("shortcut='none' builds the paper's plain networks, not pre-activation ones; drop preact")
        final_norm = preact if final_norm is None else final_norm
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=False)
        # A pre-activation network's first block normalises its own input, so the stem is a bare convolution.
        self.bn1 = None if preact else nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        c_in = widths[0]
        for i, (num_blocks, width) in enumerate(zip(layers, widths, strict=True)):
            stride = 1 if i == 0 else 2
            same_shape = stride == 1 and c_in == width
            downsample = (
                None if same_shape or shortcut == "none" else make_shortcut(shortcut, c_in, width, stride, preact)
            )
            block = PreActBlock if preact else PlainBlock if shortcut == "none" else BasicBlock
            blocks = [block(c_in, width, stride, downsample)] + [block(width, width) for _ in range(1, num_blocks)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            c_in = width
        self.num_stages = len(layers)
        self.bn_final = nn.BatchNorm2d(c_in) if final_norm else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c_in, num_classes)
        init_kaiming(self, mode=init_mode)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = self.relu(self.bn1(x))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        if self.bn_final is not None:
            x = self.relu(self.bn_final(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _cifar_resnet(depth: int, **kwargs) -> CifarResNet:
    n = (depth - 2) // 6
    return CifarResNet(**{"layers": (n, n, n), **kwargs})


def _cfg(**facts) -> dict:
    """The facts the family's CIFAR networks share, then each network's own."""
    return {
        "family": "resnet",
        "variant": "cifar",
        "input_size": 32,
        "min_input_size": 1,
        "in_channels": 3,
        "classifier": "fc",
        "feature_layer": "layer3",
        **facts,
    }


def _he(test_acc: float) -> dict:
    """He et al.'s CIFAR-10 figure: 100% less the test error of table 6 (ResNet-110: the best of five runs)."""
    return {"cifar10": {"test_acc": test_acc, "where": "table 6, test error on CIFAR-10"}}


# The registry's facts. ``feature_layer``: the third and last stage (8x8 at 32 px), before global average pooling.
_UVA = "UvA deep learning tutorial 5 (Lippe 2022)"

default_cfgs = {
    "resnet20": _cfg(source="He et al. 2016, section 4.2 (ResNet-20 for CIFAR-10)", published=_he(0.9125)),
    "resnet32": _cfg(source="He et al. 2016, section 4.2 (ResNet-32 for CIFAR-10)", published=_he(0.9249)),
    "resnet44": _cfg(source="He et al. 2016, section 4.2 (ResNet-44 for CIFAR-10)", published=_he(0.9283)),
    "resnet56": _cfg(source="He et al. 2016, section 4.2 (ResNet-56 for CIFAR-10)", published=_he(0.9303)),
    "resnet110": _cfg(source="He et al. 2016, section 4.2 (ResNet-110 for CIFAR-10)", published=_he(0.9357)),
    "resnet_uva": _cfg(source=f"{_UVA}, ResNet"),
    "preact_resnet_uva": _cfg(
        source=f"{_UVA}, PreActResNet; He et al. 2016, 'Identity mappings in deep residual networks'"
    ),
}


@register_model
def resnet20(**kwargs) -> CifarResNet:
    return _cifar_resnet(20, **kwargs)


@register_model
def resnet32(**kwargs) -> CifarResNet:
    return _cifar_resnet(32, **kwargs)


@register_model
def resnet44(**kwargs) -> CifarResNet:
    return _cifar_resnet(44, **kwargs)


@register_model
def resnet56(**kwargs) -> CifarResNet:
    return _cifar_resnet(56, **kwargs)


@register_model
def resnet110(**kwargs) -> CifarResNet:
    return _cifar_resnet(110, **kwargs)


@register_model
def resnet_uva(**kwargs) -> CifarResNet:
    return CifarResNet(**{"shortcut": "conv", "init_mode": "fan_in", **kwargs})


@register_model
def preact_resnet_uva(**kwargs) -> CifarResNet:
    uva = {"preact": True, "shortcut": "projection", "final_norm": False, "init_mode": "fan_in"}
    return CifarResNet(**{**uva, **kwargs})
