"""GoogLeNet / Inception v1 (Szegedy et al., 2015, "Going deeper with convolutions").

An Inception block runs four branches side by side and concatenates their channels: a 1x1
convolution; 1x1 then 3x3; 1x1 then 5x5; 3x3 max pool then 1x1. The 1x1 convolutions in front of the
larger kernels reduce the channel count first, which keeps the block cheap.

* ``googlenet_d2l`` (D2L 8.4): the paper's nine Inception blocks without BatchNorm, grouped as the book
  does into five ``nn.Sequential`` stages and a ``Linear``; trained at 96 px on Fashion-MNIST.
* ``googlenet``: torchvision's architecture. It departs from the paper in ways kept here for weight
  compatibility: BatchNorm (eps 1e-3) after every convolution, the "5x5" branch uses a 3x3 kernel,
  max pools use ``ceil_mode``, and dropout 0.2 before the classifier. The two auxiliary classifiers are
  optional (``aux_logits=True``; off by default); with them, training-mode forward returns a
  ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)`` tuple as torchvision does, and the training engine adds
  their losses weighted by 0.3, the paper's weight (the registry's ``aux_loss_weight``). ``transform_input``
  re-normalises ImageNet-normalised input the way torchvision's pretrained weights expect.
* ``googlenet_uva``: the small GoogLeNet of the UvA deep-learning tutorial 5 for 32 px CIFAR images: a
  3x3 stem of 64 channels, eight small Inception blocks with BatchNorm (convolutions keep their bias, as
  in the tutorial) and two max pools; 260,650 parameters for 10 classes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor, nn

from moderncnn.errors import ModelError
from moderncnn.models._registry import register_model
from moderncnn.models.layers import ConvBNAct, imagenet_to_inception, init_kaiming

ConvFactory = Callable[..., nn.Module]


class Inception(nn.Module):
    """Four parallel branches, concatenated along channels.

    Args:
        in_channels: input channels.
        c1: output channels of the 1x1 branch.
        c2: (reduction, output) channels of the 1x1 → 3x3 branch.
        c3: (reduction, output) channels of the 1x1 → ``kernel3`` branch.
        c4: output channels of the pool → 1x1 branch.
        conv: builds ``conv(in_channels, out_channels, kernel_size)`` units (with or without BatchNorm).
        kernel3: kernel of the third branch (5 in the paper, 3 in torchvision).
        ceil_mode: ``ceil_mode`` of the pooling branch (torchvision sets it; at stride 1 it changes nothing).
    """

    def __init__(
        self,
        in_channels: int,
        c1: int,
        c2: tuple[int, int],
        c3: tuple[int, int],
        c4: int,
        conv: ConvFactory = ConvBNAct,
        kernel3: int = 5,
        ceil_mode: bool = False,
    ):
        super().__init__()
        self.branch1 = conv(in_channels, c1, 1)
        self.branch2 = nn.Sequential(conv(in_channels, c2[0], 1), conv(c2[0], c2[1], 3))
        self.branch3 = nn.Sequential(conv(in_channels, c3[0], 1), conv(c3[0], c3[1], kernel3))
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=ceil_mode), conv(in_channels, c4, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class InceptionAux(nn.Module):
    """torchvision's auxiliary classifier: 4x4 average pool, 1x1 conv to 128, 1024-unit hidden layer."""

    def __init__(self, in_channels: int, num_classes: int, conv: ConvFactory, dropout: float = 0.7):
        super().__init__()
        self.conv = conv(in_channels, 128, 1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(nn.functional.adaptive_avg_pool2d(x, (4, 4)))
        x = self.dropout(torch.relu(self.fc1(torch.flatten(x, 1))))
        return self.fc2(x)


class GoogLeNetOutputs(NamedTuple):
    logits: Tensor
    aux_logits2: Tensor | None
    aux_logits1: Tensor | None


# The paper's nine Inception blocks: (in_channels, c1, (c2 reduce, c2), (c3 reduce, c3), c4).
INCEPTION_V1 = {
    "3a": (192, 64, (96, 128), (16, 32), 32),
    "3b": (256, 128, (128, 192), (32, 96), 64),
    "4a": (480, 192, (96, 208), (16, 48), 64),
    "4b": (512, 160, (112, 224), (24, 64), 64),
    "4c": (512, 128, (128, 256), (24, 64), 64),
    "4d": (512, 112, (144, 288), (32, 64), 64),
    "4e": (528, 256, (160, 320), (32, 128), 128),
    "5a": (832, 256, (160, 320), (32, 128), 128),
    "5b": (832, 384, (192, 384), (48, 128), 128),
}

# The UvA tutorial's blocks for 32 px images, same tuple layout (the input channels are those the default widths give;
# `GoogLeNetUvA` derives them from the block before); "M" is a 3x3/2 max pool.
INCEPTION_UVA = [
    (64, 16, (32, 32), (16, 8), 8),
    (64, 24, (32, 48), (16, 12), 12),
    "M",
    (96, 24, (32, 48), (16, 12), 12),
    (96, 16, (32, 48), (16, 16), 16),
    (96, 16, (32, 48), (16, 16), 16),
    (96, 32, (32, 48), (16, 24), 24),
    "M",
    (128, 32, (48, 64), (16, 16), 16),
    (128, 32, (48, 64), (16, 16), 16),
]


class GoogLeNet(nn.Module):
    """torchvision's GoogLeNet (module names match, so its state dict loads)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = False,
        transform_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ):
        super().__init__()
        if transform_input and in_channels != 3:
            raise ModelError("transform_input re-normalises RGB input; it needs in_channels=3")
        conv = partial(ConvBNAct, bn_eps=1e-3)
        block = partial(Inception, conv=conv, kernel3=3, ceil_mode=True)
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        self.conv1 = conv(in_channels, 64, 7, stride=2)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = conv(64, 64, 1)
        self.conv3 = conv(64, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = block(*INCEPTION_V1["3a"])
        self.inception3b = block(*INCEPTION_V1["3b"])
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = block(*INCEPTION_V1["4a"])
        self.inception4b = block(*INCEPTION_V1["4b"])
        self.inception4c = block(*INCEPTION_V1["4c"])
        self.inception4d = block(*INCEPTION_V1["4d"])
        self.inception4e = block(*INCEPTION_V1["4e"])
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = block(*INCEPTION_V1["5a"])
        self.inception5b = block(*INCEPTION_V1["5b"])
        self.aux1 = InceptionAux(512, num_classes, conv, dropout_aux) if aux_logits else None
        self.aux2 = InceptionAux(528, num_classes, conv, dropout_aux) if aux_logits else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)

    def forward(self, x: Tensor) -> Tensor | GoogLeNetOutputs:
        if self.transform_input:
            x = imagenet_to_inception(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


class GoogLeNetD2L(nn.Sequential):
    """The textbook GoogLeNet: five ``nn.Sequential`` stages ``b1``..``b5`` and a ``Linear`` head."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        conv = partial(ConvBNAct, norm=False)
        block = partial(Inception, conv=conv)

        def pool() -> nn.MaxPool2d:
            return nn.MaxPool2d(3, stride=2, padding=1)

        stages = OrderedDict(
            b1=nn.Sequential(conv(in_channels, 64, 7, stride=2), pool()),
            b2=nn.Sequential(conv(64, 64, 1), conv(64, 192, 3), pool()),
            b3=nn.Sequential(*(block(*INCEPTION_V1[k]) for k in ("3a", "3b")), pool()),
            b4=nn.Sequential(*(block(*INCEPTION_V1[k]) for k in ("4a", "4b", "4c", "4d", "4e")), pool()),
            b5=nn.Sequential(
                *(block(*INCEPTION_V1[k]) for k in ("5a", "5b")), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten()
            ),
            fc=nn.Linear(1024, num_classes),
        )
        super().__init__(stages)


class GoogLeNetUvA(nn.Sequential):
    """The UvA tutorial's GoogLeNet for 32 px images: ``stem``, ``blocks``, ``head``.

    The channel options scale the tutorial's channel counts (``INCEPTION_UVA``) branch by branch, so that a search can
    move capacity between the branches; the defaults build the tutorial's network. Each block takes the channels the
    block before it concatenates.

    Args:
        num_classes: classifier outputs.
        in_channels: image channels.
        stem_channels: output channels of the 3x3 stem (64 in the tutorial).
        width_1x1: factor on the 1x1 branch's output channels.
        width_3x3: factor on the 3x3 branch's output channels.
        width_5x5: factor on the 5x5 branch's output channels.
        width_pool: factor on the pooling branch's output channels.
        width_reduce: factor on the 1x1 reductions in front of the 3x3 and 5x5 convolutions.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_channels: int = 64,
        width_1x1: float = 1.0,
        width_3x3: float = 1.0,
        width_5x5: float = 1.0,
        width_pool: float = 1.0,
        width_reduce: float = 1.0,
    ):
        def scaled(channels: int, factor: float) -> int:
            return max(1, round(channels * factor))

        conv = partial(ConvBNAct, bias=True)
        blocks, channels = [], stem_channels
        for cfg in INCEPTION_UVA:
            if cfg == "M":
                blocks.append(nn.MaxPool2d(3, stride=2, padding=1))
                continue
            _, c1, (r2, c2), (r3, c3), c4 = cfg
            c1, c2, c3, c4 = scaled(c1, width_1x1), scaled(c2, width_3x3), scaled(c3, width_5x5), scaled(c4, width_pool)
            reduce2, reduce3 = scaled(r2, width_reduce), scaled(r3, width_reduce)
            blocks.append(Inception(channels, c1, (reduce2, c2), (reduce3, c3), c4, conv=conv))
            channels = c1 + c2 + c3 + c4
        super().__init__(
            OrderedDict(
                stem=conv(in_channels, stem_channels, 3),
                blocks=nn.Sequential(*blocks),
                head=nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(channels, num_classes)),
            )
        )
        init_kaiming(self, mode="fan_in")


def _cfg(**facts) -> dict:
    """The facts the family's networks share, then each network's own."""
    return {"family": "googlenet", "min_input_size": 1, "classifier": "fc", **facts}


# The registry's facts. ``feature_layer``: the last Inception block (5b), whose map global pooling averages.
default_cfgs = {
    "googlenet_d2l": _cfg(
        variant="textbook",
        input_size=96,
        in_channels=1,
        feature_layer="b5.1",
        source="Szegedy et al. 2015; Dive into Deep Learning 8.4",
    ),
    "googlenet": _cfg(
        variant="torchvision",
        input_size=224,
        min_input_size=15,
        in_channels=3,
        feature_layer="inception5b",
        # "During training, their loss gets added to the total loss of the network with a discount weight (the
        # losses of the auxiliary classifiers were weighted by 0.3)" (Szegedy et al. 2015, section 5).
        aux_loss_weight=0.3,
        source="Szegedy et al. 2015; torchvision.models.googlenet",
    ),
    "googlenet_uva": _cfg(
        variant="cifar",
        input_size=32,
        in_channels=3,
        classifier="head.2",
        feature_layer="blocks",
        source="UvA deep learning tutorial 5 (Lippe 2022), GoogleNet",
    ),
}


@register_model
def googlenet_d2l(**kwargs) -> GoogLeNetD2L:
    return GoogLeNetD2L(**kwargs)


@register_model
def googlenet(**kwargs) -> GoogLeNet:
    return GoogLeNet(**kwargs)


@register_model
def googlenet_uva(**kwargs) -> GoogLeNetUvA:
    return GoogLeNetUvA(**kwargs)
