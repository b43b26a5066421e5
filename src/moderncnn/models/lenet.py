"""LeNet-5 (LeCun et al., 1998, "Gradient-based learning applied to document recognition").

Two variants, both as Dive into Deep Learning builds them for 28x28 Fashion-MNIST:

* ``lenet`` (D2L 7.6): two 5x5 convolutions (6 and 16 channels) each followed by a sigmoid and 2x2
  average pooling, then dense layers of 120, 84 and ``num_classes`` units with sigmoids between them.
  The paper's sparse C3 connections and Gaussian RBF output layer are left out, as in the book.
* ``lenet_bn`` (D2L 8.5): BatchNorm after every convolution and hidden dense layer. As in the book, its
  first convolution has no padding, so at 28 px the flattened features are 16x4x4 = 256, not 400.

Both flatten feature maps into a ``Linear``, so they accept one input size only (28 by default; build
with ``input_size=32`` for 32 px images).
"""

from __future__ import annotations

from torch import nn

from moderncnn.errors import ModelError
from moderncnn.models._registry import register_model
from moderncnn.models.layers import conv_output_size


class LeNet(nn.Sequential):
    """LeNet-5 as one flat ``nn.Sequential``, so a summary lists the same 12 (or 16) layers the book prints.

    Args:
        num_classes: number of output logits.
        in_channels: input channels.
        input_size: side of the square input the classifier is sized for.
        batch_norm: the BatchNorm variant of D2L 8.5.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 28, batch_norm: bool = False):
        padding = 0 if batch_norm else 2
        side = conv_output_size(input_size, 5, padding=padding) // 2
        side = conv_output_size(side, 5) // 2
        if side < 1:
            raise ModelError(f"LeNet needs input_size of at least {12 if padding else 16}, got {input_size}")

        def conv(c_in: int, c_out: int, pad: int) -> list[nn.Module]:
            norm = [nn.BatchNorm2d(c_out)] if batch_norm else []
            return [nn.Conv2d(c_in, c_out, kernel_size=5, padding=pad), *norm, nn.Sigmoid()]

        def dense(c_in: int, c_out: int) -> list[nn.Module]:
            norm = [nn.BatchNorm1d(c_out)] if batch_norm else []
            return [nn.Linear(c_in, c_out), *norm, nn.Sigmoid()]

        super().__init__(
            *conv(in_channels, 6, padding),
            nn.AvgPool2d(kernel_size=2, stride=2),
            *conv(6, 16, 0),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            *dense(16 * side * side, 120),
            *dense(120, 84),
            nn.Linear(84, num_classes),
        )


def _cfg(**facts) -> dict:
    """The facts the family's networks share, then each network's own."""
    return {
        "family": "lenet",
        "variant": "textbook",
        "input_size": 28,
        "in_channels": 1,
        "fixed_input_size": True,
        **facts,
    }


# The registry's facts. ``feature_layer`` is the second average pool, the last map before ``Flatten``.
_SOURCE = "LeCun et al. 1998; Dive into Deep Learning"
default_cfgs = {
    "lenet": _cfg(min_input_size=12, classifier="11", feature_layer="5", source=f"{_SOURCE} 7.6"),
    "lenet_bn": _cfg(min_input_size=16, classifier="15", feature_layer="7", source=f"{_SOURCE} 8.5 (BatchNorm)"),
}


@register_model
def lenet(**kwargs) -> LeNet:
    return LeNet(**kwargs)


@register_model
def lenet_bn(**kwargs) -> LeNet:
    return LeNet(**{"batch_norm": True, **kwargs})
