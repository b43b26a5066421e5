"""airbench94: the CIFAR-10 speed-run network of K. Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU"
(arXiv 2404.00498; repository KellerJordan/cifar10-airbench, script ``airbench94_muon.py``).

A fixed 2x2 patch-whitening convolution (3 to 24 channels: the eigenvectors of the training patches' covariance,
each with its negative, scaled by one over the square root of its eigenvalue) and a GELU, then three groups of
conv 3x3, max-pool 2, BatchNorm, GELU, conv 3x3, BatchNorm, GELU with 64, 256 and 256 channels, a global max-pool
and a bias-free linear head whose output is divided by its input width. Convolutions have no bias and start as
the identity on their first ``in_channels`` filters (Dirac); BatchNorm keeps its scale at 1 (frozen) and uses
momentum 0.4 in torch's convention (the script's 0.6 is the weight of the old statistics) and eps 1e-12. The
whitening weights are set from training images by :meth:`AirbenchNet.init_from_data` before training (the
registry's ``data_init_images`` tells the engine how many), then stay frozen; their bias trains.

Differences from the script:

* The final pooling is global (``AdaptiveMaxPool2d(1)``). The script's ``MaxPool2d(3)`` is the same at 32 px,
  where the last map is 3x3; pooling globally lets the network take any side of 9 px or more (Fashion-MNIST's
  28 px, for one).
* Weights stay in fp32 and run under autocast (bf16 where the hardware computes it); the script stores them in
  fp16 except BatchNorm's.
* ``in_channels=1`` whitens 1-channel patches into 8 channels (2 x 1 x 2 x 2), by the same rule.
* The head's initial weights are torch's default ``Linear`` initialisation rescaled to unit standard deviation, as
  in the script. Training choices of the script (its optimisers, schedule, augmentation, the whitening bias trained
  only for the first 3 epochs) belong to the recipe (``reproduce airbench``), not to the network.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from moderncnn.models._registry import register_model

WHITEN_KERNEL = 2
WIDTHS = (64, 256, 256)
WHITEN_EPS = 5e-4  # added to each eigenvalue before the square root: bounds the gain of near-empty directions
BN_MOMENTUM = 0.4  # torch's convention: the weight of the new batch (the script writes 1 - 0.6)
BN_EPS = 1e-12


class FrozenScaleBatchNorm(nn.BatchNorm2d):
    """BatchNorm with its scale fixed at 1 (only the shift trains), the script's momentum and eps."""

    def __init__(self, num_features: int, momentum: float = BN_MOMENTUM, eps: float = BN_EPS):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


class DiracConv(nn.Conv2d):
    """A bias-free 3x3 "same" convolution whose first ``in_channels`` filters start as the identity."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():
            nn.init.dirac_(self.weight[: self.in_channels])


class ConvGroup(nn.Module):
    """conv, max-pool 2, BatchNorm, GELU, conv, BatchNorm, GELU (the pool before the first norm saves 3/4 of it)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = DiracConv(in_channels, out_channels)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = FrozenScaleBatchNorm(out_channels)
        self.conv2 = DiracConv(out_channels, out_channels)
        self.norm2 = FrozenScaleBatchNorm(out_channels)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """The airbench94 network (see the module docstring).

    Args:
        num_classes: number of output logits.
        in_channels: image channels.
        widths: channels of the three conv groups.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, widths: tuple[int, int, int] = WIDTHS):
        super().__init__()
        whiten_width = 2 * in_channels * WHITEN_KERNEL**2
        self.whiten = nn.Conv2d(in_channels, whiten_width, WHITEN_KERNEL, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.layers = nn.Sequential(
            nn.GELU(),
            ConvGroup(whiten_width, widths[0]),
            ConvGroup(widths[0], widths[1]),
            ConvGroup(widths[1], widths[2]),
        )
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.head_scale = 1.0 / widths[2]
        with torch.no_grad():
            self.head.weight /= self.head.weight.std()

    @torch.no_grad()
    def init_from_data(self, images: Tensor) -> None:
        """Set the whitening filters from normalised training images ``(N, C, H, W)``: the eigenvectors of the
        covariance of all their 2x2 patches, each divided by the square root of its eigenvalue (plus a small eps),
        and their negatives (so GELU passes both signs). Deterministic for the same images."""
        c, k = images.shape[1], WHITEN_KERNEL
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # (N, C, H-1, W-1, k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * k * k)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = eigenvectors.T.reshape(-1, c, k, k) / torch.sqrt(eigenvalues + WHITEN_EPS).view(-1, 1, 1, 1)
        self.whiten.weight.copy_(torch.cat((filters, -filters)))

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.layers(self.whiten(x))).flatten(1)
        return self.head(x) * self.head_scale


# The registry's facts. ``feature_layer``: the last conv group's map (3x3 at 32 px) before the global max-pool.
# ``data_init_images``: the script whitens with the covariance of the first 5,000 training images' patches.
default_cfgs = {
    "airbench94": {
        "family": "airbench",
        "variant": "cifar",
        "input_size": 32,
        "min_input_size": 9,
        "in_channels": 3,
        "classifier": "head",
        "feature_layer": "layers.3",
        "source": "Jordan 2024, '94% on CIFAR-10 in 3.29 seconds on a single GPU' (airbench94_muon.py)",
        "data_init_images": 5000,
        "published": {"cifar10": {"test_acc": 0.9401, "where": "the repository's README, mean of 200 runs"}},
    },
}


@register_model
def airbench94(**kwargs) -> AirbenchNet:
    return AirbenchNet(**kwargs)
