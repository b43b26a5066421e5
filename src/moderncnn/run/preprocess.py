"""The one input pipeline of a trained network: what an image goes through before the network sees it.

An image file is decoded by PIL (as image folders are read for training: :func:`moderncnn.data.image.read_file`),
converted to the network's channels (luma for grey networks, replicated grey for RGB ones) and scaled to [0, 1];
then normalised with the run's mean and std and resized to its input size (bilinear, antialiased) by the evaluation
path of the training loader's ``BatchAugment``. ``predict``, ``serve``, ``inspect`` and ``evaluate`` all take it
from :meth:`RunInfo.preprocess <moderncnn.run.checkpoint.RunInfo.preprocess>`, as torchvision's weights carry their
``transforms``: the preprocessing travels with what was trained.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from torch import Tensor

from moderncnn.data.image import read_file

# Images normalised and resized at a time: bounds the float copies of a large batch.
CHUNK = 256


@dataclass(frozen=True)
class Preprocess:
    """A trained network's preprocessing.

    Attributes:
        channels: image channels the network takes (1: grey, 3: RGB).
        input_size: side of the square images it was trained on.
        mean, std: per-channel normalisation of images scaled to [0, 1].
    """

    channels: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, channels: int, input_size: int, mean: Sequence[float], std: Sequence[float]) -> Preprocess:
        return cls(int(channels), int(input_size), tuple(float(m) for m in mean), tuple(float(s) for s in std))

    @functools.cached_property
    def _augment(self):
        from moderncnn.data.augment import BatchAugment

        return BatchAugment("none", mean=list(self.mean), std=list(self.std), resize=self.input_size, train=False)

    def read(
        self,
        path: str | os.PathLike | BinaryIO,
        thumbnail_size: int | None = None,
        max_pixels: int | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """An image file as the network reads it, uint8 ``(C, H, W)`` (and a thumbnail with ``thumbnail_size``);
        large images shrink while they are read, to a few times the input size.

        Raises:
            UnreadableImage: the file cannot be read (the reason, without the path).
        """
        return read_file(path, self.channels, thumbnail_size, max_pixels, input_size=self.input_size)

    def __call__(self, images: Tensor) -> Tensor:
        """uint8 images ``(N, C, H, W)`` as network input ``(N, C, S, S)``: scaled, normalised and resized."""
        import torch

        if len(images) <= CHUNK:
            return self._augment(images)
        return torch.cat([self._augment(images[i : i + CHUNK]) for i in range(0, len(images), CHUNK)])

    def describe(self) -> dict:
        """What is done to each image, as ``serve``'s ``/predict`` reports it."""
        return {
            "channels": self.channels,
            "color": "RGB" if self.channels == 3 else "grey (ITU-R 601-2 luma)",
            "scale": "pixel values to [0, 1] by their bit depth",
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": [self.input_size, self.input_size],
            "interpolation": "bilinear, antialiased, whole image (no crop)",
        }
