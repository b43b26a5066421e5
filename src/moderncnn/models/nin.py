"""Network in Network (Lin, Chen and Yan, 2014), as Dive into Deep Learning 8.3 builds it.

A NiN block is one kxk convolution followed by two 1x1 convolutions (a per-pixel MLP), each with a
ReLU. The network uses AlexNet's kernel sizes and widths (11x11/4, 5x5, 3x3; 96, 256, 384 channels)
with 3x3/2 max pools between blocks, dropout, and replaces the dense head with a last NiN block that
has one channel per class followed by global average pooling. The book's version (used here) keeps a
ReLU on the class block's output before the pooling.
"""

from __future__ import annotations

from torch import nn

from moderncnn.models._registry import register_model


def nin_block(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> nn.Sequential:
    """A kxk convolution and two 1x1 convolutions, each followed by a ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=1),
        nn.ReLU(inplace=True),
    )


class NiN(nn.Sequential):
    """The textbook NiN as one flat ``nn.Sequential``, so a summary prints the book's ten rows."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5):
        super().__init__(
            nin_block(in_channels, 96, kernel_size=11, stride=4, padding=0),
            nn.MaxPool2d(3, stride=2),
            nin_block(96, 256, kernel_size=5, stride=1, padding=2),
            nn.MaxPool2d(3, stride=2),
            nin_block(256, 384, kernel_size=3, stride=1, padding=1),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout(dropout),
            nin_block(384, num_classes, kernel_size=3, stride=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
        )


# The registry's facts. ``feature_layer``: the class block, one map per class that global pooling averages.
default_cfgs = {
    "nin": {
        "family": "nin",
        "variant": "textbook",
        "input_size": 224,
        "min_input_size": 67,
        "in_channels": 1,
        "classifier": "7.4",
        "feature_layer": "7",
        "source": "Lin et al. 2014; Dive into Deep Learning 8.3",
    },
}


@register_model
def nin(**kwargs) -> NiN:
    return NiN(**kwargs)
