"""ResNet (He, Zhang, Ren and Sun, 2016, "Deep residual learning for image recognition"): ImageNet-style.

A residual block adds its input back to its output, ``relu(F(x) + shortcut(x))``, so a deep stack can
fall back to the identity and train. Stages of blocks double the channels and halve the resolution;
the first block of a stage changes shape and so needs a shortcut that does too (a strided 1x1 conv).

* ``resnet18`` ... ``resnet152``: torchvision's architecture (ResNet "v1.5": in a bottleneck block the
  stride sits on the 3x3 convolution, not the first 1x1 as in the paper). Module names match
  torchvision's (``conv1 bn1 layer1..4 fc``), so its ImageNet weights load.
* ``resnet18_d2l`` (D2L 8.6): the textbook's ResNet-18: the same layout, but convolutions keep their
  bias, the shortcut of a downsampling block is a bare 1x1 convolution (no BatchNorm), and the network is
  grouped into the book's six ``nn.Sequential`` stages (``b1``..``b5``, ``last``); trained at 96 px.

The blocks defined here (``BasicBlock``, ``Bottleneck``, ``PreActBlock``) are also the blocks of the
CIFAR ResNets in ``resnet_cifar.py``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from moderncnn.models._registry import register_model
from moderncnn.models.layers import init_kaiming


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm; ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        stride: stride of the first convolution (2 halves the resolution).
        downsample: the shortcut when the shape changes (``None``: identity).
        bias: give the convolutions a bias (the textbook's do).
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        bias: bool = False,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce → 3x3 (strided) → 1x1 expand to ``4 * channels``, each with BatchNorm, plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, channels * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class PreActBlock(nn.Module):
    """Pre-activation block (He et al. 2016, "Identity mappings"): ``conv2(relu(bn2(conv1(relu(bn1(x)))))) + x``.

    BatchNorm and ReLU come before each convolution and nothing follows the addition, so the identity
    path runs untouched through the whole network.
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity


class ResNet(nn.Module):
    """torchvision's ImageNet ResNet: 7x7/2 stem and 3x3/2 max pool, four stages of 64..512 channels."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], stride=1)
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_kaiming(self)
        if zero_init_residual:
            # Each block starts as the identity (Goyal et al. 2017): the last BatchNorm of its branch is 0.
            for m in self.modules():
                last_bn = m.bn3 if isinstance(m, Bottleneck) else m.bn2 if isinstance(m, BasicBlock) else None
                if last_bn is not None:
                    nn.init.zeros_(last_bn.weight)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        out_channels = planes * block.expansion
        downsample = None
        if stride != 1 or self.in_planes != out_channels:
            downsample = nn.Sequential(
                nn.Conv2d(self.in_planes, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )
        layers = [block(self.in_planes, planes, stride, downsample)]
        self.in_planes = out_channels
        layers += [block(out_channels, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class ResNetD2L(nn.Sequential):
    """The textbook ResNet: stem ``b1``, one stage per ``(num_residuals, channels)`` in ``arch``, then ``last``."""

    def __init__(self, arch: tuple[tuple[int, int], ...], num_classes: int = 10, in_channels: int = 1):
        stages: OrderedDict[str, nn.Module] = OrderedDict(
            b1=nn.Sequential(
                nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        )
        c_in = 64
        for i, (num_residuals, channels) in enumerate(arch):
            # The first stage follows the max pool, so it keeps resolution and width; the others halve and widen.
            stride = 1 if i == 0 else 2
            shortcut = None if i == 0 else nn.Conv2d(c_in, channels, kernel_size=1, stride=stride)
            blocks = [BasicBlock(c_in, channels, stride, shortcut, bias=True)]
            blocks += [BasicBlock(channels, channels, bias=True) for _ in range(1, num_residuals)]
            stages[f"b{i + 2}"] = nn.Sequential(*blocks)
            c_in = channels
        stages["last"] = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(c_in, num_classes))
        super().__init__(stages)


# Blocks per stage of the torchvision ResNets.
LAYERS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
D2L_ARCHS = {18: ((2, 64), (2, 128), (2, 256), (2, 512))}


def _resnet(depth: int, **kwargs) -> ResNet:
    return ResNet(BasicBlock if depth < 50 else Bottleneck, LAYERS[depth], **kwargs)


def _cfg(**facts) -> dict:
    """The facts the family's networks share (the torchvision ones' by default), then each network's own."""
    return {
        "family": "resnet",
        "variant": "torchvision",
        "input_size": 224,
        "min_input_size": 1,
        "in_channels": 3,
        "classifier": "fc",
        "feature_layer": "layer4",
        **facts,
    }


# The registry's facts. ``feature_layer``: the last stage of residual blocks, before global average pooling.
default_cfgs = {
    "resnet18": _cfg(source="He et al. 2016 (ResNet-18); torchvision.models.resnet18"),
    "resnet34": _cfg(source="He et al. 2016 (ResNet-34); torchvision.models.resnet34"),
    "resnet50": _cfg(source="He et al. 2016 (ResNet-50); torchvision.models.resnet50"),
    "resnet101": _cfg(source="He et al. 2016 (ResNet-101); torchvision.models.resnet101"),
    "resnet152": _cfg(source="He et al. 2016 (ResNet-152); torchvision.models.resnet152"),
    "resnet18_d2l": _cfg(
        variant="textbook",
        input_size=96,
        in_channels=1,
        classifier="last.2",
        feature_layer="b5",
        source="He et al. 2016; Dive into Deep Learning 8.6",
    ),
}


@register_model
def resnet18(**kwargs) -> ResNet:
    return _resnet(18, **kwargs)


@register_model
def resnet34(**kwargs) -> ResNet:
    return _resnet(34, **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    return _resnet(50, **kwargs)


@register_model
def resnet101(**kwargs) -> ResNet:
    return _resnet(101, **kwargs)


@register_model
def resnet152(**kwargs) -> ResNet:
    return _resnet(152, **kwargs)


@register_model
def resnet18_d2l(**kwargs) -> ResNetD2L:
    return ResNetD2L(D2L_ARCHS[18], **kwargs)
