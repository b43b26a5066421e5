"""What every data module shares: the in-memory :class:`Split`, the :class:`Dataset`, the data root and the
validation split. A leaf of ``moderncnn.data``: the readers (``datasets``, ``folder``, ``synthetic``) import it, it
imports none of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from moderncnn.errors import DataError

__all__ = ["DEFAULT_ROOT", "NAMED", "DataError", "Dataset", "Split", "carve_validation", "data_root"]

DEFAULT_ROOT = Path("~/.cache/moderncnn/data")
NAMED = ("fashion-mnist", "mnist", "cifar10", "cifar100", "digits", "synthetic")


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` if given, else ``$MODERNCNN_DATA``, else ``~/.cache/moderncnn/data``."""
    chosen = data_dir or os.environ.get("MODERNCNN_DATA") or DEFAULT_ROOT
    return Path(chosen).expanduser()


@dataclass
class Split:
    """One split held in memory: uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)``."""

    images: Tensor
    labels: Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: Tensor) -> Split:
        return Split(self.images[indices], self.labels[indices])

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()


@dataclass
class Dataset:
    """A named dataset: its classes and splits (``train`` and ``test``, ``val`` when one is carved out).

    Attributes:
        name: the name it was loaded by, e.g. ``"cifar10"`` or ``"imagefolder:photos"``.
        classes: class names, index = label.
        splits: ``{"train": ..., "val": ..., "test": ...}``; :class:`Split` in memory, or torchvision datasets.
        channels: 1 (grey) or 3 (RGB).
        image_size: side of the (square) native images, ``None`` when they vary (image folders).
        root: where the files were found.
    """

    name: str
    classes: list[str]
    splits: dict[str, Split | torch.utils.data.Dataset]
    channels: int
    image_size: int | None
    root: Path | None = None
    info: dict = field(default_factory=dict)

    @property
    def in_memory(self) -> bool:
        return all(isinstance(s, Split) for s in self.splits.values())

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def carve_validation(train: Split, val_size: int | float, seed: int) -> tuple[Split, Split | None]:
    """Split ``train`` into (train, val) with a seeded permutation.

    Same as ``torch.utils.data.random_split(train, [n - val_size, val_size], generator=manual_seed(seed))``,
    so the UvA tutorial's 45,000/5,000 CIFAR-10 split (seed 42) is reproduced exactly.

    Args:
        val_size: number of validation images, or a fraction of the training split in [0, 1).
        seed: seed of the permutation.
    """
    n = len(train)
    count = round(val_size * n) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    if not 0 <= count < n:
        raise DataError(f"val_size must be in [0, {n}) images or a fraction in [0, 1), got {val_size}")
    if count == 0:
        return train, None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return train.subset(order[: n - count]), train.subset(order[n - count :])
