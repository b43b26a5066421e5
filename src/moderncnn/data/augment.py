"""Augmentation presets, twice: batched tensor ops on the training device, and torchvision transforms.

``BatchAugment`` is the fast path of the device-resident loader: a whole uint8 batch is flipped, cropped,
resized and normalised in a handful of tensor operations on its own device, with no per-image Python loop.
``reference_transform`` builds the same preset from ``torchvision.transforms.v2`` for one image at a time, for
the ``DataLoader`` path (image folders) and as the definition the batched path is tested against.

Presets: ``none``; ``d2l`` (resize only, to the model's input, as the textbook does); ``cifar`` (random
crop of the native size after 4 px zero padding, horizontal flip); ``uva`` (random resized crop back to the
native size with scale (0.8, 1) and ratio (0.9, 1.1), horizontal flip: the UvA deep-learning tutorial's CIFAR
augmentation); ``airbench`` (random shifts of up to 2 px with reflected borders, and horizontal flip: airbench94's
"translate 2"). Random augmentation happens at native resolution; ``resize`` then applies to any preset. In
evaluation (``train=False``) only resize and normalisation remain. ``cutout`` (with any preset) blanks a square
of that side, wholly inside the image at a uniform random place, to the mean colour (DeVries and Taylor 2017,
"Improved Regularization of Convolutional Neural Networks with Cutout"), after the preset's crops and flips.
``jpeg`` (with any preset) re-encodes a fraction of the training batches as JPEG at a random quality in
``jpeg_quality`` before anything else, with torchvision's ``v2.JPEG`` operation: a network trained on lossless
images loses accuracy on the JPEG files users have, and seeing the artefacts in training keeps most of it.

``flip="alternate"`` (airbench94, Jordan 2024, section 3.6) replaces the mirror coin of each image and epoch: each
image gets one fixed coin (from its index in the split and the seed) for the first epoch, and is mirrored relative
to it on every odd epoch, so two consecutive epochs show it both ways. It needs each image's index and the epoch,
which only the batched path has.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.nn import functional as F

from moderncnn.constants import AUGMENT_PRESETS
from moderncnn.errors import UsageError

if TYPE_CHECKING:
    from torchvision.transforms import v2

PRESETS = AUGMENT_PRESETS
CROP_PADDING = 4
SHIFT_PADDING = 2  # the airbench preset's reflected border
UVA_SCALE = (0.8, 1.0)
UVA_RATIO = (0.9, 1.1)
_CROP_TRIES = 10  # boxes torchvision's RandomResizedCrop draws before it falls back to a centre crop
JPEG_QUALITY = (50, 95)  # the default range of qualities: from heavy compression to a camera's "fine"


def _check_settings(preset: str, resize: int | None) -> None:
    if preset not in PRESETS:
        raise UsageError(f"unknown augmentation preset {preset!r}; valid: {', '.join(PRESETS)}")
    if preset == "d2l" and resize is None:
        raise UsageError("the d2l preset resizes to the model's input; give resize=N")
    if resize is not None and resize < 1:
        raise UsageError(f"resize must be a positive number of pixels, got {resize}")


class BatchAugment:
    """Augments and normalises a whole uint8 batch on its own device.

    Takes uint8 images ``(N, C, H, W)`` on any device and returns float32 ``(N, C, S, S)`` on the same device,
    where ``S`` is ``resize`` or the native size.

    Args:
        preset: one of ``PRESETS``.
        mean: per-channel mean to subtract, in [0, 1] pixel units.
        std: per-channel standard deviation to divide by, in [0, 1] pixel units.
        resize: output side (bilinear, antialiased, like ``v2.Resize``), or ``None`` to keep the native size.
        train: apply the random part of the preset; ``False`` only resizes and normalises.
        generator: source of all randomness, on the images' device (the global RNG when ``None``): the same
            seed and batch give bit-identical output.
        cutout: side of the square blanked in each training image, in native pixels (0: none).
        jpeg: fraction of training batches re-encoded as JPEG, one random quality per batch (0: none).
        jpeg_quality: the lowest and highest quality drawn (uniform, whole numbers).
        flip: ``random`` (a coin per image and call) or ``alternate`` (see the module docstring).
        flip_seed: the seed of the alternating flip's fixed coins.
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
        cutout: int = 0,
        jpeg: float = 0.0,
        jpeg_quality: Sequence[int] = JPEG_QUALITY,
        flip: str = "random",
        flip_seed: int = 0,
    ):
        _check_settings(preset, resize)
        self.preset, self.resize, self.train, self.generator = preset, resize, train, generator
        self.cutout, self.flip, self.flip_seed = cutout, flip, flip_seed
        self.jpeg, self.jpeg_quality = jpeg, tuple(jpeg_quality)
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)

    def __call__(self, images: Tensor, index: Tensor | None = None, epoch: int = 0) -> Tensor:
        """Augment and normalise ``images``; ``index`` (their positions in the split) and ``epoch`` are what the
        alternating flip needs."""
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected a uint8 batch (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        channels, device = images.shape[1], images.device
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(
                f"mean and std need {channels} values, one per channel; got {len(self.mean)} and {len(self.std)}"
            )
        if self.train and self.jpeg > 0:
            images = self._jpeg(images)
        random = self.train and self.preset in ("cifar", "uva", "airbench")
        if random:
            flip = self._flips(len(images), device, index, epoch)
        if random and self.preset == "cifar":
            images = self._pad_crop(images, flip)
        elif random and self.preset == "airbench":
            images = self._pad_crop(images, flip, SHIFT_PADDING, mode="reflect")
        # Normalise at native resolution: crops and resizes take weighted averages whose weights sum to 1, so they
        # commute with this affine map, and an upsampled batch (28 -> 224 px) would cost 64 times more here.
        mean, std = self.mean.to(device)[None, :, None, None], self.std.to(device)[None, :, None, None]
        x = images.float().div_(255).sub_(mean).div_(std)
        if random and self.preset == "uva":
            x = self._resized_crop(x, flip)
        if self.train and self.cutout:
            x = self._cutout(x)
        if self.resize is not None and x.shape[-2:] != (self.resize, self.resize):
            if self.resize < max(x.shape[-2:]):
                x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", antialias=True)
            else:
                x = _upsample(x, self.resize)
        return x

    def _rand(self, *shape: int, device: torch.device) -> Tensor:
        """Uniform [0, 1) numbers from the generator, drawn on its device (a generator serves only its own)."""
        source = self.generator.device if self.generator is not None else device
        return torch.rand(*shape, generator=self.generator, device=source).to(device)

    def _jpeg(self, images: Tensor) -> Tensor:
        """A ``jpeg`` fraction of the batches, re-encoded with ``v2.functional.jpeg`` at one quality drawn for the
        batch (from the generator, so a resumed run draws the same). The codec runs on the CPU: one batch of 512
        CIFAR images takes a few milliseconds there, small beside a training step."""
        draw = self._rand(2, device=torch.device("cpu"))
        if float(draw[0]) >= self.jpeg:
            return images
        low, high = self.jpeg_quality
        quality = low + min(int(float(draw[1]) * (high - low + 1)), high - low)
        from torchvision.transforms import v2

        with warnings.catch_warnings():  # torchvision 0.29 deprecates its codecs for TorchCodec's, once per call
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
            return v2.functional.jpeg(images.cpu(), quality).to(images.device)

    def _flips(self, n: int, device: torch.device, index: Tensor | None, epoch: int) -> Tensor:
        """Which images of the batch to mirror."""
        if self.flip == "random":
            return self._rand(n, device=device) < 0.5
        if index is None:
            raise UsageError("the alternating flip needs each image's index and the epoch (the device-resident loader)")
        return alternate_flips(index.to(device), epoch, self.flip_seed)

    def _cutout(self, x: Tensor) -> Tensor:
        """Zero (the mean, after normalisation) a ``cutout``-sided square at a uniform random place in each image."""
        n, _, h, w = x.shape
        side = min(self.cutout, h, w)
        top = (self._rand(n, device=x.device) * (h - side + 1)).long()
        left = (self._rand(n, device=x.device) * (w - side + 1)).long()
        rows = torch.arange(h, device=x.device)[None, :] - top[:, None]
        cols = torch.arange(w, device=x.device)[None, :] - left[:, None]
        inside = ((rows >= 0) & (rows < side))[:, :, None] & ((cols >= 0) & (cols < side))[:, None, :]
        return x.masked_fill(inside[:, None], 0.0)

    def _pad_crop(self, images: Tensor, flip: Tensor, p: int = CROP_PADDING, mode: str = "constant") -> Tensor:
        """Pad by ``p`` (zeros, or the image reflected), cut a window of the native size at a uniform random offset,
        and mirror where ``flip``.

        The batch is stacked with its mirror image and padded once; ``unfold`` views every window of every image
        without copying, so one gather picks each image's orientation and offset (on the CPU three times faster than
        a masked copy per offset, five times faster than indexing every pixel). Mirroring before cropping is the
        same augmentation as after: offsets d and 2p - d are equally likely.
        """
        n, _, h, w = images.shape
        offsets = (self._rand(2, n, device=images.device) * (2 * p + 1)).long()  # rand < 1, so at most 2p
        padded = F.pad(torch.cat([images, images.flip(-1)]), (p, p, p, p), mode=mode).unflatten(0, (2, n))
        windows = padded.unfold(3, h, 1).unfold(4, w, 1)  # (2, N, C, 2p + 1, 2p + 1, H, W)
        return windows[flip.long(), torch.arange(n, device=images.device), :, offsets[0], offsets[1]]

    def _resized_crop(self, x: Tensor, flip: Tensor) -> Tensor:
        """torchvision's ``RandomResizedCrop`` for all images at once, mirrored where ``flip``.

        The boxes are drawn as torchvision draws them (area fraction uniform in ``UVA_SCALE``, log aspect ratio
        uniform in ``log(UVA_RATIO)``, sides rounded to whole pixels, redrawn up to 10 times until the box fits,
        corner uniform over the whole pixels that keep it inside), but for every image at once; one ``grid_sample``
        then crops, resizes and mirrors the batch. Where the box is smaller than the image, the outermost output
        pixels take up to 8 % of their value from the pixel just outside the box; torchvision, which resizes the cut
        box, repeats the box's edge pixel instead.
        """
        n, _, h, w = x.shape
        tries = self._rand(2, _CROP_TRIES, n, device=x.device)
        area = h * w * (UVA_SCALE[0] + (UVA_SCALE[1] - UVA_SCALE[0]) * tries[0])
        log_lo, log_hi = math.log(UVA_RATIO[0]), math.log(UVA_RATIO[1])
        ratio = torch.exp(log_lo + (log_hi - log_lo) * tries[1])
        box_w, box_h = torch.sqrt(area * ratio).round(), torch.sqrt(area / ratio).round()
        fits = (box_w <= w) & (box_h <= h)
        first = fits.int().argmax(dim=0, keepdim=True)  # argmax returns the first of equal maxima
        # About 12 % of the draws overflow a 32 px square, so all ten fail with probability 1e-9; torchvision then
        # takes the centre crop of the closest allowed ratio, which is the whole image when it is square.
        found = fits.any(dim=0)
        box_w = torch.where(found, box_w.gather(0, first)[0], w)
        box_h = torch.where(found, box_h.gather(0, first)[0], h)
        corner = self._rand(2, n, device=x.device)
        top, left = (corner[0] * (h - box_h + 1)).floor(), (corner[1] * (w - box_w + 1)).floor()
        # The boxes are axis-aligned, so the sampling grid pairs one coordinate ramp per axis (affine_grid would
        # multiply every pixel by a 2x3 matrix: twice the time on the CPU).
        mirror = torch.where(flip, -1.0, 1.0)
        grid_x, grid_y = _box_ramp(w, left, box_w, mirror), _box_ramp(h, top, box_h, torch.ones_like(mirror))
        grid = torch.stack(torch.broadcast_tensors(grid_x[:, None, :], grid_y[:, :, None]), dim=-1)  # (N, H, W, xy)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def alternate_flips(index: Tensor, epoch: int, seed: int) -> Tensor:
    """airbench94's alternating flip: whether each image (by its ``index`` in the split) is mirrored in ``epoch``.

    Every image has one fixed coin, the parity of a golden-ratio (Weyl) sequence at its index shifted by the seed,
    so exactly half of any run of consecutive indices is mirrored in epoch 0, whatever the split's size; odd epochs
    mirror every image relative to that.
    """
    coin = torch.frac((index.double() + seed * 0.7548776662466927) * 0.6180339887498949) < 0.5
    return coin ^ bool(epoch % 2)


def _upsample(x: Tensor, size: int) -> Tensor:
    """Bilinear enlargement of a float batch to ``size`` x ``size``, as two matrix products.

    Enlarging, bilinear interpolation (``align_corners=False``) makes each output row a blend of two input rows
    and each output column a blend of two input columns, so the whole resize is ``rows @ x @ columns.T`` with two
    small fixed matrices. The same values as ``F.interpolate`` (to float rounding: 1e-6 on [0, 1] pixels) and as
    ``v2.Resize`` (antialiasing changes nothing when enlarging), about 1.4x faster on the CPU at 28 -> 224 px: the
    products run in the BLAS library instead of a per-pixel kernel.
    """
    rows = _bilinear_matrix(x.shape[-2], size, x.device)
    columns = _bilinear_matrix(x.shape[-1], size, x.device)
    return rows @ (x @ columns.T)


@functools.lru_cache(maxsize=32)
def _bilinear_matrix(n_in: int, n_out: int, device: torch.device) -> Tensor:
    """``(n_out, n_in)``: row i holds the weights output pixel i gives the input pixels along one axis."""
    # Output pixel centre i maps to (i + 0.5) * n_in / n_out - 0.5 in input pixels (the half-pixel convention of
    # align_corners=False); positions before the first pixel's centre take it alone, as do those past the last.
    position = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    left = position.floor().long().clamp(max=n_in - 1)
    right = (left + 1).clamp(max=n_in - 1)
    weight_right = position - left
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    matrix.index_put_((rows, left), 1 - weight_right, accumulate=True)
    matrix.index_put_((rows, right), weight_right, accumulate=True)
    return matrix.float().to(device)


def _box_ramp(size: int, start: Tensor, length: Tensor, mirror: Tensor) -> Tensor:
    """Where each output pixel of one axis samples the input, in ``grid_sample``'s [-1, 1] coordinates, per image.

    Output pixel centres are spread evenly over the box ``[start, start + length)`` (in input pixels), as a resize of
    the cropped box places them; ``mirror`` -1 lists them right to left.
    """
    centres = (2 * torch.arange(size, device=start.device) + 1) / size - 1  # output pixel centres in (-1, 1)
    return (length[:, None] * (1 + mirror[:, None] * centres) + 2 * start[:, None]) / size - 1


def reference_transform(
    preset: str,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    resize: int | None = None,
    train: bool = True,
    cutout: int = 0,
    jpeg: float = 0.0,
    jpeg_quality: Sequence[int] = JPEG_QUALITY,
) -> v2.Compose:
    """The same preset as ``torchvision.transforms.v2`` for one uint8 image tensor ``(C, H, W)``.

    This is the ``DataLoader`` path, and the definition ``BatchAugment`` is tested against. The crops need the
    image's native size, which a transform does not know in advance, so they read it from each image: the
    pipeline works for CIFAR, MNIST and image folders alike.

    Args:
        preset: one of ``PRESETS``.
        mean: per-channel mean to subtract, in [0, 1] pixel units.
        std: per-channel standard deviation to divide by, in [0, 1] pixel units.
        resize: output side, or ``None`` to keep the native size.
        train: apply the random part of the preset.
        cutout: side of the square blanked in each training image, in native pixels (0: none).
        jpeg: probability that an image is re-encoded as JPEG at a random quality in ``jpeg_quality``.
        jpeg_quality: the lowest and highest quality.

    Returns:
        A transform from a uint8 ``(C, H, W)`` tensor to a normalised float32 one.
    """
    from torchvision.transforms import v2  # here: the batched path (predict, evaluation) needs no torchvision

    _check_settings(preset, resize)
    steps: list[torch.nn.Module] = []
    if train and jpeg > 0:
        steps.append(v2.RandomApply([v2.JPEG(tuple(jpeg_quality))], p=jpeg))
    if train and preset == "cifar":
        steps += [_NativeRandomCrop(padding=CROP_PADDING), v2.RandomHorizontalFlip()]
    elif train and preset == "airbench":
        steps += [_NativeRandomCrop(padding=SHIFT_PADDING, padding_mode="reflect"), v2.RandomHorizontalFlip()]
    elif train and preset == "uva":
        steps += [_NativeRandomResizedCrop(), v2.RandomHorizontalFlip()]
    normalise = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    if train and cutout:  # blanked to the mean at native size, as the batched path does, then resized
        steps += [*normalise, _NativeCutout(cutout)]
        normalise = []
    if resize is not None:
        steps.append(v2.Resize((resize, resize), antialias=True))
    return v2.Compose(steps + normalise)


class _NativeRandomCrop(torch.nn.Module):
    """``v2.RandomCrop`` back to the image's own size after zero padding."""

    def __init__(self, padding: int, padding_mode: str = "constant"):
        super().__init__()
        self.padding, self.padding_mode = padding, padding_mode

    def forward(self, image: Tensor) -> Tensor:
        from torchvision.transforms import v2

        return v2.RandomCrop(tuple(image.shape[-2:]), padding=self.padding, padding_mode=self.padding_mode)(image)


class _NativeRandomResizedCrop(torch.nn.Module):
    """``v2.RandomResizedCrop`` back to the image's own size with the UvA tutorial's scale and ratio."""

    def forward(self, image: Tensor) -> Tensor:
        from torchvision.transforms import v2

        return v2.RandomResizedCrop(tuple(image.shape[-2:]), scale=UVA_SCALE, ratio=UVA_RATIO, antialias=True)(image)


class _NativeCutout(torch.nn.Module):
    """A ``side``-sided square, wholly inside the image at a uniform random place, set to 0 (the normalised mean)."""

    def __init__(self, side: int):
        super().__init__()
        self.side = side

    def forward(self, image: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        side = min(self.side, h, w)
        top, left = (int(torch.randint(n - side + 1, ())) for n in (h, w))
        from torchvision.transforms import v2

        return v2.functional.erase(image, top, left, side, side, torch.zeros(()))
