"""Augmentation presets, twice: batched tensor ops on the training device, and torchvision transforms.

``BatchAugment`` is the fast path of the device-resident loader: a whole uint8 batch is flipped, cropped,
resized and normalised in a handful of tensor operations on its own device. ``reference_transform``
builds the same preset from ``torchvision.transforms.v2`` for one image at a time, for the ``DataLoader``
path (image folders) and as the reference the batched path is tested against.

Presets: ``none``; ``d2l`` (resize only, to the network's input, as the textbook does); ``cifar`` (random
32 px crop after 4 px zero padding, horizontal flip); ``uva`` (random resized crop with scale (0.8, 1) and
ratio (0.9, 1.1), horizontal flip). Random augmentation happens at native resolution; ``resize`` then
applies to any preset. In evaluation (``train=False``) only resize and normalisation remain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision.transforms import v2

PRESETS = ("none", "d2l", "cifar", "uva")
CROP_PADDING = 4
UVA_SCALE = (0.8, 1.0)
UVA_RATIO = (0.9, 1.1)


def _check_preset(preset: str, resize: int | None) -> None:
    if preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; valid: {', '.join(PRESETS)}")
    if preset == "d2l" and resize is None:
        raise ValueError("the d2l preset resizes to the network's input; give resize=N")


class BatchAugment:
    """Augments and normalises a whole uint8 batch ``(N, C, H, W)`` on its own device.

    Args:
        preset: one of ``PRESETS``.
        mean, std: per-channel normalisation, in [0, 1] pixel units.
        resize: output side (bilinear, antialiased), or ``None`` to keep the native size.
        train: apply the random part of the preset.
        generator: source of all randomness (on the images' device); the loader reseeds it every epoch.
    """

    def __init__(
        self,
        preset: str,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        resize: int | None = None,
        train: bool = True,
        generator: torch.Generator | None = None,
    ):
        _check_preset(preset, resize)
        self.preset, self.resize, self.train, self.generator = preset, resize, train, generator
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)

    def _rand(self, *shape: int, device: torch.device) -> Tensor:
        device = self.generator.device if self.generator is not None else device
        return torch.rand(*shape, generator=self.generator, device=device)

    def __call__(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected a uint8 batch (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(self.mean) != images.shape[1] or len(self.std) != images.shape[1]:
            raise ValueError(f"mean/std have {len(self.mean)} values but the images have {images.shape[1]} channels")
        device = images.device
        random = self.train and self.preset in ("cifar", "uva")
        if random and self.preset == "cifar":
            images = self._pad_crop(images)
        # Normalise at native resolution: resizing and cropping take weighted averages whose weights sum to 1, so
        # they commute with this affine map, and upsampled batches (28 -> 224 px) are 64 times cheaper to do here.
        mean, std = self.mean.to(device)[None, :, None, None], self.std.to(device)[None, :, None, None]
        x = images.float().div_(255).sub_(mean).div_(std)
        if random and self.preset == "uva":
            x = self._resized_crop(x)
        if random:
            flip = (self._rand(len(x), device=device) < 0.5).to(device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if self.resize is not None and x.shape[-2:] != (self.resize, self.resize):
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", antialias=True, align_corners=False)
        return x

    def _pad_crop(self, images: Tensor) -> Tensor:
        """Zero-pad by 4 and cut a window of the original size at a uniform random offset, per image.

        Rows first, then columns, one slice per possible offset (9 + 9 copies): a general gather with
        per-pixel indices is four times slower on the CPU.
        """
        n, c, h, w = images.shape
        p = CROP_PADDING
        padded = F.pad(images, (p, p, p, p))
        offsets = (self._rand(2, n, device=images.device) * (2 * p + 1)).long().clamp_(max=2 * p).to(images.device)
        rows = torch.empty(n, c, h, w + 2 * p, dtype=images.dtype, device=images.device)
        for dy in range(2 * p + 1):
            chosen = offsets[0] == dy
            rows[chosen] = padded[chosen, :, dy : dy + h]
        out = torch.empty_like(images)
        for dx in range(2 * p + 1):
            chosen = offsets[1] == dx
            out[chosen] = rows[chosen, :, :, dx : dx + w]
        return out

    def _resized_crop(self, x: Tensor) -> Tensor:
        """torchvision's RandomResizedCrop sampling, all images at once via one ``affine_grid``/``grid_sample``.

        Area fraction uniform in ``UVA_SCALE``, log aspect ratio uniform in ``log(UVA_RATIO)``, position uniform.
        torchvision redraws a box that does not fit the image (up to 10 times); here a side that would
        exceed the image is clamped to it instead, which with these ranges on square images is rare and
        changes the box by a few percent at most.
        """
        n, _, h, w = x.shape
        u = self._rand(4, n, device=x.device).to(x.device)
        area = UVA_SCALE[0] + (UVA_SCALE[1] - UVA_SCALE[0]) * u[0]
        log_lo, log_hi = math.log(UVA_RATIO[0]), math.log(UVA_RATIO[1])
        ratio = torch.exp(log_lo + (log_hi - log_lo) * u[1])
        # Box size in units of the image side (width, height), clamped to fit.
        bw = torch.sqrt(area * ratio).clamp(max=1.0)
        bh = torch.sqrt(area / ratio).clamp(max=1.0)
        # Box centre in [-1, 1] coordinates, uniform over the positions that keep the box inside.
        cx = (1 - bw) * (2 * u[2] - 1)
        cy = (1 - bh) * (2 * u[3] - 1)
        theta = torch.zeros(n, 2, 3, device=x.device)
        theta[:, 0, 0], theta[:, 0, 2] = bw, cx
        theta[:, 1, 1], theta[:, 1, 2] = bh, cy
        grid = F.affine_grid(theta, [n, x.shape[1], h, w], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def reference_transform(
    preset: str, *, mean: Sequence[float], std: Sequence[float], resize: int | None = None, train: bool = True
) -> v2.Compose:
    """The same preset as ``torchvision.transforms.v2`` for one uint8 image tensor ``(C, H, W)``.

    Native-size steps need the image size, which a transform does not know in advance: the crops take it
    from the image itself (``_NativeRandomCrop``), so the pipeline works for CIFAR, MNIST and folders alike.
    """
    _check_preset(preset, resize)
    steps: list = []
    if train and preset == "cifar":
        steps += [_NativeRandomCrop(padding=CROP_PADDING), v2.RandomHorizontalFlip()]
    elif train and preset == "uva":
        steps += [_NativeRandomResizedCrop(), v2.RandomHorizontalFlip()]
    if resize is not None:
        steps.append(v2.Resize((resize, resize), antialias=True))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


class _NativeRandomCrop(torch.nn.Module):
    """``v2.RandomCrop`` to the image's own size after zero padding."""

    def __init__(self, padding: int):
        super().__init__()
        self.padding = padding

    def forward(self, image: Tensor) -> Tensor:
        return v2.RandomCrop(tuple(image.shape[-2:]), padding=self.padding)(image)


class _NativeRandomResizedCrop(torch.nn.Module):
    """``v2.RandomResizedCrop`` back to the image's own size with the UvA tutorial's scale and ratio."""

    def forward(self, image: Tensor) -> Tensor:
        return v2.RandomResizedCrop(tuple(image.shape[-2:]), scale=UVA_SCALE, ratio=UVA_RATIO, antialias=True)(image)
