"""Inception-v3 (Szegedy et al., 2016, "Rethinking the Inception architecture for computer vision").

GoogLeNet's successor two steps on (BN-Inception, the step between, is ``inception_bn.py``): 5x5 convolutions
factorised into two 3x3 ones and 7x7 ones into 1x7 then 7x1, grid-size reduction modules that run stride-2
convolutions beside the pooling, BatchNorm (eps 1e-3) after every convolution, 299 px input.

* ``inception_v3``: torchvision's architecture, module names and all, so its ImageNet weights load. The auxiliary
  classifier on the 17x17 grid is optional (``aux_logits=True``; off by default as in our ``googlenet``, on by
  default in torchvision); with it, training-mode forward returns ``InceptionOutputs(logits, aux_logits)`` and the
  training engine adds the auxiliary loss weighted by 0.4 (the registry's ``aux_loss_weight``), the weight of
  Google's TF-slim training script (``research/slim/train_image_classifier.py``); the paper states none. That
  classifier needs 299 px inputs (a 17x17 grid at Mixed_6e); the main network works from 75 px, as torchvision's
  documented minimum. ``transform_input`` re-normalises ImageNet-normalised input as in ``googlenet``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from moderncnn.errors import ModelError
from moderncnn.models._registry import register_model
from moderncnn.models.layers import ConvBNAct, imagenet_to_inception

# torchvision's BasicConv2d: no padding unless given, BatchNorm eps 1e-3.
_conv = partial(ConvBNAct, padding=0, bn_eps=1e-3)


def _chain(x: Tensor, *layers: nn.Module) -> Tensor:
    for layer in layers:
        x = layer(x)
    return x


class InceptionA(nn.Module):
    """35x35 module: 1x1; 1x1 → 5x5; 1x1 → 3x3 → 3x3; 3x3 average pool → 1x1 to ``pool_features``."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = _conv(in_channels, 64, 1)
        self.branch5x5_1 = _conv(in_channels, 48, 1)
        self.branch5x5_2 = _conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = _conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _conv(96, 96, 3, padding=1)
        self.branch_pool = _conv(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = _chain(x, self.branch5x5_1, self.branch5x5_2)
        b3 = _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3)
        pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return torch.cat([self.branch1x1(x), b5, b3, pool], 1)


class InceptionB(nn.Module):
    """35 → 17 reduction: 3x3/2; 1x1 → 3x3 → 3x3/2; 3x3/2 max pool."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = _conv(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = _conv(in_channels, 64, 1)
        self.branch3x3dbl_2 = _conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _conv(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3)
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    """17x17 module with 7x7 convolutions factorised into 1x7 and 7x1 ones, ``channels_7x7`` wide inside."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        row, col = {"kernel_size": (1, 7), "padding": (0, 3)}, {"kernel_size": (7, 1), "padding": (3, 0)}
        self.branch1x1 = _conv(in_channels, 192, 1)
        self.branch7x7_1 = _conv(in_channels, c7, 1)
        self.branch7x7_2 = _conv(c7, c7, **row)
        self.branch7x7_3 = _conv(c7, 192, **col)
        self.branch7x7dbl_1 = _conv(in_channels, c7, 1)
        self.branch7x7dbl_2 = _conv(c7, c7, **col)
        self.branch7x7dbl_3 = _conv(c7, c7, **row)
        self.branch7x7dbl_4 = _conv(c7, c7, **col)
        self.branch7x7dbl_5 = _conv(c7, 192, **row)
        self.branch_pool = _conv(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3)
        b7dbl = _chain(x, *(getattr(self, f"branch7x7dbl_{i}") for i in range(1, 6)))
        pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return torch.cat([self.branch1x1(x), b7, b7dbl, pool], 1)


class InceptionD(nn.Module):
    """17 → 8 reduction: 1x1 → 3x3/2; 1x1 → 1x7 → 7x1 → 3x3/2; 3x3/2 max pool."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = _conv(in_channels, 192, 1)
        self.branch3x3_2 = _conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _conv(in_channels, 192, 1)
        self.branch7x7x3_2 = _conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _conv(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = _chain(x, self.branch3x3_1, self.branch3x3_2)
        b7 = _chain(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """8x8 module whose 3x3 branches end in parallel 1x3 and 3x1 convolutions (the expanded filter bank)."""

    def __init__(self, in_channels: int):
        super().__init__()
        row, col = {"kernel_size": (1, 3), "padding": (0, 1)}, {"kernel_size": (3, 1), "padding": (1, 0)}
        self.branch1x1 = _conv(in_channels, 320, 1)
        self.branch3x3_1 = _conv(in_channels, 384, 1)
        self.branch3x3_2a = _conv(384, 384, **row)
        self.branch3x3_2b = _conv(384, 384, **col)
        self.branch3x3dbl_1 = _conv(in_channels, 448, 1)
        self.branch3x3dbl_2 = _conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _conv(384, 384, **row)
        self.branch3x3dbl_3b = _conv(384, 384, **col)
        self.branch_pool = _conv(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3dbl = _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        pool = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(b3),
                self.branch3x3_2b(b3),
                self.branch3x3dbl_3a(b3dbl),
                self.branch3x3dbl_3b(b3dbl),
                pool,
            ],
            1,
        )


class InceptionAux(nn.Module):
    """The auxiliary classifier on the 17x17 grid: 5x5/3 average pool, 1x1 conv to 128, 5x5 conv to 768, ``fc``."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.conv0 = _conv(in_channels, 128, 1)
        self.conv1 = _conv(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if min(x.shape[-2:]) < 17:
            raise ModelError(
                f"inception_v3's auxiliary classifier needs 299x299 inputs (a 17x17 grid at Mixed_6e, got "
                f"{tuple(x.shape[-2:])}); resize the images or build it without aux_logits"
            )
        x = self.conv1(self.conv0(F.avg_pool2d(x, 5, stride=3)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InceptionOutputs(NamedTuple):
    logits: Tensor
    aux_logits: Tensor | None


class Inception3(nn.Module):
    """torchvision's Inception-v3 (module names match, so its state dict loads)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool = False,
        transform_input: bool = False,
        dropout: float = 0.5,
    ):
        super().__init__()
        if transform_input and in_channels != 3:
            raise ModelError("transform_input re-normalises RGB input; it needs in_channels=3")
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = _conv(in_channels, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _conv(32, 32, 3)
        self.Conv2d_2b_3x3 = _conv(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)
        self.Conv2d_3b_1x1 = _conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _conv(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)
        # torchvision's initialisation: N(0, 0.1) truncated at +-2, the auxiliary fc N(0, 0.001). (It also means
        # 0.01 for the auxiliary conv1, but sets that on the wrapper, not the convolution, so 0.1 applies.)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                std = 0.001 if self.AuxLogits is not None and m is self.AuxLogits.fc else 0.1
                nn.init.trunc_normal_(m.weight, mean=0.0, std=std, a=-2, b=2)

    def forward(self, x: Tensor) -> Tensor | InceptionOutputs:
        if self.transform_input:
            x = imagenet_to_inception(x)
        x = _chain(x, self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3, self.maxpool1)
        x = _chain(x, self.Conv2d_3b_1x1, self.Conv2d_4a_3x3, self.maxpool2)
        x = _chain(x, self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a)
        x = _chain(x, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e)
        aux = self.AuxLogits(x) if self.AuxLogits is not None and self.training else None
        x = _chain(x, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c)
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if self.training and self.aux_logits:
            return InceptionOutputs(x, aux)
        return x


def _cfg(**facts) -> dict:
    """The facts the family's networks share, then each network's own."""
    return {"family": "inception", "classifier": "fc", **facts}


# The registry's facts. ``feature_layer``: the last Inception module (8x8 at 299 px), before global pooling.
default_cfgs = {
    "inception_v3": _cfg(
        variant="torchvision",
        input_size=299,
        min_input_size=75,
        in_channels=3,
        feature_layer="Mixed_7c",
        aux_loss_weight=0.4,  # TF-slim's train_image_classifier.py (the paper gives no weight)
        source="Szegedy et al. 2016, 'Rethinking the Inception architecture'; torchvision.models.inception_v3",
    ),
}


@register_model
def inception_v3(**kwargs) -> Inception3:
    return Inception3(**kwargs)
