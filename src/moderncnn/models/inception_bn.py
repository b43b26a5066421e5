"""BN-Inception, or Inception v2 (Ioffe and Szegedy, 2015, "Batch normalization", Figure 5).

GoogLeNet with BatchNorm after every convolution and each 5x5 branch factorised into two stacked 3x3
convolutions; the pool branches average (max in 5b), and the strided modules 3c and 4e take over from the max
pools between stages: their two 3x3 branches end in a stride-2 convolution, their pool branch is a 3x3/2 max pool
passed through without a projection, and they have no 1x1 branch.

* ``inception_bn``: the paper's layers, for 1-channel 96 px Fashion-MNIST by default as ``googlenet_d2l`` (every
  layer pads, so any size works; at 96 px the last modules see 3x3 maps, at the paper's 224 px 7x7). Differences
  from the paper: that input; global (adaptive) average pooling instead of 7x7; no auxiliary classifiers and no
  dropout (the paper removes dropout from its accelerated BN networks, section 4.2.1). The paper's output-size
  column says 576 channels after 4c and 4d and 1024 after 4e, but its own branch columns sum to 608, 608 and 1056;
  the branch columns are built here, as in public BN-Inception implementations (pytorchcv's ``bninception``,
  Cadene's ``pretrainedmodels``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from moderncnn.models._registry import register_model
from moderncnn.models.layers import ConvBNAct, init_kaiming


class BNInceptionBlock(nn.Module):
    """A BN-Inception module: [1x1]; 1x1 → 3x3; 1x1 → 3x3 → 3x3; pool → [1x1], concatenated.

    Args:
        in_channels: input channels.
        c1: channels of the 1x1 branch (0: none, as in the strided modules).
        c2: (reduction, output) channels of the 1x1 → 3x3 branch.
        c3: (reduction, output) channels of the 1x1 → 3x3 → 3x3 branch (the factorised 5x5).
        pool: ``"avg"`` or ``"max"``, the pool branch's 3x3 pooling.
        c4: channels of the pool branch's 1x1 projection (0: the pooled input passes through).
        stride: 2 in the modules that halve the resolution (on the last convolution of each 3x3 branch and the pool).
    """

    def __init__(self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], pool: str, c4: int,
                 stride: int = 1):  # fmt: skip
        super().__init__()
        self.branch1 = ConvBNAct(in_channels, c1, 1) if c1 else None
        self.branch2 = nn.Sequential(ConvBNAct(in_channels, c2[0], 1), ConvBNAct(c2[0], c2[1], 3, stride))
        self.branch3 = nn.Sequential(
            ConvBNAct(in_channels, c3[0], 1), ConvBNAct(c3[0], c3[1], 3), ConvBNAct(c3[1], c3[1], 3, stride)
        )
        pooling = (nn.AvgPool2d if pool == "avg" else nn.MaxPool2d)(3, stride, padding=1)
        self.branch4 = nn.Sequential(pooling, ConvBNAct(in_channels, c4, 1)) if c4 else nn.Sequential(pooling)
        self.out_channels = c1 + c2[1] + c3[1] + (c4 or in_channels)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches if self.branch1 is None else [self.branch1(x), *branches], 1)


# The paper's Figure 5, module by module: (#1x1, (#3x3 reduce, #3x3), (double #3x3 reduce, double #3x3), pool,
# pool projection, stride).
BN_INCEPTION = {
    "3a": (64, (64, 64), (64, 96), "avg", 32, 1),
    "3b": (64, (64, 96), (64, 96), "avg", 64, 1),
    "3c": (0, (128, 160), (64, 96), "max", 0, 2),
    "4a": (224, (64, 96), (96, 128), "avg", 128, 1),
    "4b": (192, (96, 128), (96, 128), "avg", 128, 1),
    "4c": (160, (128, 160), (128, 160), "avg", 128, 1),
    "4d": (96, (128, 192), (160, 192), "avg", 128, 1),
    "4e": (0, (128, 192), (192, 256), "max", 0, 2),
    "5a": (352, (192, 320), (160, 224), "avg", 128, 1),
    "5b": (352, (192, 320), (192, 224), "max", 128, 1),
}


class BNInception(nn.Module):
    """BN-Inception: 7x7/2 stem, 3x3/2 max pool, 1x1 → 3x3 to 192, 3x3/2 max pool, ten modules, global pool, ``fc``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, 64, 7, stride=2)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = ConvBNAct(64, 64, 1)
        self.conv3 = ConvBNAct(64, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 192
        for name, cfg in BN_INCEPTION.items():
            module = BNInceptionBlock(channels, *cfg)
            self.add_module(f"inception{name}", module)
            channels = module.out_channels
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        init_kaiming(self, mode="fan_in")

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        for name in BN_INCEPTION:
            x = getattr(self, f"inception{name}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


# The registry's facts. ``feature_layer``: the last Inception module (3x3 at 96 px), before global pooling.
default_cfgs = {
    "inception_bn": {
        "family": "inception",
        "variant": "textbook",
        "input_size": 96,
        "min_input_size": 1,
        "in_channels": 1,
        "classifier": "fc",
        "feature_layer": "inception5b",
        "source": "Ioffe & Szegedy 2015, 'Batch normalization', Figure 5 (BN-Inception)",
    },
}


@register_model
def inception_bn(**kwargs) -> BNInception:
    return BNInception(**kwargs)
