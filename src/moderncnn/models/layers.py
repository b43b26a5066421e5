"""Building blocks shared by more than one family, and the weight initialisations they use."""

from __future__ import annotations

from torch import Tensor, nn

# ImageNet's per-channel mean and standard deviation (RGB), with which torchvision's pretrained weights were trained.
from moderncnn.constants import IMAGENET_MEAN, IMAGENET_STD


class ConvBNAct(nn.Module):
    """``Conv2d`` → optional ``BatchNorm2d`` → optional ReLU: the unit GoogLeNet and friends are made of.

    The attribute names (``conv``, ``bn``) are torchvision's ``BasicConv2d`` ones, so GoogLeNet's
    state dict loads into networks built from this block.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: kernel side, or (height, width) for Inception-v3's 1x7 and 7x1 kernels.
        stride: convolution stride.
        padding: zero padding; ``None`` keeps the spatial size (``kernel_size // 2``, square kernels).
        norm: add a BatchNorm after the convolution.
        bias: give the convolution a bias; ``None`` means "only without BatchNorm", which is the usual choice
            (a bias before BatchNorm is cancelled by its mean subtraction; the UvA tutorial keeps it anyway).
        bn_eps: BatchNorm epsilon (torchvision's GoogLeNet and Inception-v3 use 1e-3).
        act: apply a ReLU at the end.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        *,
        norm: bool = True,
        bias: bool | None = None,
        bn_eps: float = 1e-5,
        act: bool = True,
    ):
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        bias = not norm if bias is None else bias
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels, eps=bn_eps) if norm else None
        self.act = nn.ReLU(inplace=True) if act else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x


def imagenet_to_inception(x: Tensor) -> Tensor:
    """Map ImageNet mean/std normalised RGB to the ``(x - 0.5) / 0.5`` scaling that Google's GoogLeNet and
    Inception-v3 weights were trained on (torchvision's ``transform_input``)."""
    # (x * std + mean - 0.5) / 0.5, with the constants folded in Python as torchvision does: the same float32
    # rounding, which matters for Inception-v3's randomly initialised logits in the thousands.
    scale = x.new_tensor([s / 0.5 for s in IMAGENET_STD]).view(1, 3, 1, 1)
    shift = x.new_tensor([(m - 0.5) / 0.5 for m in IMAGENET_MEAN]).view(1, 3, 1, 1)
    return x * scale + shift


def dense_head(in_features: int, num_classes: int, dropout: float = 0.5, hidden: int = 4096) -> list[nn.Module]:
    """AlexNet's (and VGG's) head as the textbook builds it: two hidden layers, each with ReLU and dropout."""
    return [
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    ]


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Side of a convolution's or pooling's output (floor mode), as in the ``nn.Conv2d`` docs."""
    return (size + 2 * padding - kernel_size) // stride + 1


def init_kaiming(module: nn.Module, *, mode: str = "fan_out", linear_std: float | None = None) -> None:
    """He et al. (2015) initialisation, as torchvision's ResNet/VGG/DenseNet and the UvA tutorial use it.

    Convolutions get Kaiming-normal weights for ReLU (``mode`` "fan_out" as torchvision's ResNet and VGG,
    "fan_in" as its DenseNet and the UvA tutorial), BatchNorm starts as the identity (weight 1, bias 0),
    biases start at 0. Linear layers get N(0, ``linear_std``) weights when it is given (VGG uses 0.01)
    and keep PyTorch's default otherwise.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)
