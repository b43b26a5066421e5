"""A generated dataset with a learnable signal, for tests and offline demos.

Each image is a sinusoidal grating whose orientation encodes the class (class k of K is at k/K of a half
turn), with a random phase, contrast and colour and Gaussian noise on top. A small CNN learns it in a few
epochs; the random phase means no single pixel gives the class away.
"""

from __future__ import annotations

import math

import torch

from moderncnn.data.base import DataError, Dataset, Split, carve_validation


def synthetic_split(
    num_images: int, *, image_size: int = 32, channels: int = 1, num_classes: int = 10, seed: int = 0
) -> Split:
    """``num_images`` gratings with balanced labels, generated from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_images) % num_classes
    labels = labels[torch.randperm(num_images, generator=g)]
    angle = labels.float() * math.pi / num_classes
    phase = torch.rand(num_images, generator=g) * 2 * math.pi
    contrast = 0.5 + 0.5 * torch.rand(num_images, generator=g)
    coords = torch.linspace(0, 1, image_size)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    cycles = 3.0
    wave = torch.cos(
        2 * math.pi * cycles * (x * angle.cos()[:, None, None] + y * angle.sin()[:, None, None]) + phase[:, None, None]
    )
    colour = 0.5 + 0.5 * torch.rand(num_images, channels, 1, 1, generator=g)
    noise = torch.randn(num_images, channels, image_size, image_size, generator=g)
    pixels = 127.5 + 110 * contrast[:, None, None, None] * colour * wave[:, None] + 20 * noise
    return Split(pixels.round().clamp(0, 255).to(torch.uint8), labels)


def make_synthetic(
    *,
    num_train: int = 2000,
    num_test: int = 500,
    image_size: int = 32,
    channels: int = 1,
    num_classes: int = 10,
    seed: int = 0,
    val_size: int | float = 0,
    split_seed: int = 42,
) -> Dataset:
    """The ``synthetic`` dataset: train and test generated from different seeds, ``val`` carved from train."""
    if channels not in (1, 3):
        raise DataError(f"synthetic channels must be 1 or 3, got {channels}")
    if num_classes < 2 or image_size < 4 or num_train < num_classes or num_test < 1:
        raise DataError("synthetic needs num_classes >= 2, image_size >= 4, num_train >= num_classes, num_test >= 1")
    options = {"image_size": image_size, "channels": channels, "num_classes": num_classes}
    train = synthetic_split(num_train, seed=seed, **options)
    test = synthetic_split(num_test, seed=seed + 1, **options)
    train, val = carve_validation(train, val_size, split_seed)
    classes = [f"{round(180 * k / num_classes)}deg" for k in range(num_classes)]
    splits = {"train": train, **({"val": val} if val is not None else {}), "test": test}
    return Dataset("synthetic", classes, splits, channels=channels, image_size=image_size)
