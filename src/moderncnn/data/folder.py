"""``imagefolder:PATH``: your own images, one sub-folder per class, read by torchvision.

``PATH/train``, ``PATH/val`` and ``PATH/test`` are used when present (a missing ``val`` is carved from
``train``); otherwise ``PATH`` itself holds the class folders and is split 80/10/10 with a seed. Files
that are not images, or that cannot be decoded, are skipped with one warning naming each, so one bad
download does not stop a training run.

Symbolic links are followed, but each real folder is read once and each real file counted once: a link back up the
tree (``ln -s . photos/cat/self``) is skipped with a warning instead of repeating the class's images, and a file
reached by two names belongs to one split only (the test split first, then validation), so no image is tested on
what it was trained on.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes

from moderncnn.data.base import DataError, Dataset
from moderncnn.data.image import image_problem, read_image


def _usable_image(path: str) -> bool:
    """Whether ``path`` is an image file PIL can parse; warn (once per file) when it is not."""
    if not path.lower().endswith(IMG_EXTENSIONS):
        warnings.warn(f"skipping {path}: not an image file (extensions: {', '.join(IMG_EXTENSIONS)})", stacklevel=2)
        return False
    problem = image_problem(path)
    if problem:
        warnings.warn(f"skipping {path}: {problem}", stacklevel=2)
        return False
    return True


def decode(path: str, channels: int = 3, max_pixels: int | None = None) -> torch.Tensor:
    """An image file as a uint8 ``(C, H, W)`` tensor with 3 (RGB) or 1 (grey) channels.

    High-bit-depth pixels are scaled by their range, and images above the pixel limit refused from their header
    (:mod:`moderncnn.data.image`).
    """
    return read_image(path, channels, max_pixels=max_pixels)[0]


class FolderSplit(torch.utils.data.Dataset):
    """A list of ``(path, label)`` decoded into uint8 ``(C, H, W)`` tensors, then ``transform``."""

    def __init__(self, samples: list[tuple[str, int]], channels: int = 3, transform: Callable | None = None):
        self.samples = samples
        self.channels = channels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image = decode(path, self.channels)
        return (self.transform(image) if self.transform else image), label

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def subset(self, indices: torch.Tensor) -> FolderSplit:
        return FolderSplit([self.samples[i] for i in indices.tolist()], self.channels, self.transform)


def _scan(folder: Path, class_to_idx: dict[str, int], taken: set[str] | None = None) -> list[tuple[str, int]]:
    """``(path, label)`` of the usable images under ``folder/<class>``, in torchvision's ``make_dataset`` order.

    Unlike ``make_dataset``, which follows links blindly (a loop repeats a class's images until the path is too long,
    and two loops take minutes), each real folder is walked once and each real file kept once; files whose real path
    is in ``taken`` (those of another split) are left out with a warning. The real paths kept are added to ``taken``.
    """
    taken = set() if taken is None else taken
    tops = {name: folder / name for name in sorted(class_to_idx) if (folder / name).is_dir()}
    # The split's folder and every class folder count as read from the start: a link up the tree or into another
    # class never walks them again (or gives another class's images this one's label).
    seen_dirs = {os.path.realpath(folder), *(os.path.realpath(top) for top in tops.values())}
    samples = []
    for name, top in tops.items():
        found = []
        for root, dirs, files in os.walk(top, followlinks=True):
            for d in list(dirs):
                real = os.path.realpath(os.path.join(root, d))
                if real in seen_dirs:  # a loop, or a second way into a folder already read
                    warnings.warn(f"skipping {os.path.join(root, d)}: a link to {real}, already read", stacklevel=2)
                    dirs.remove(d)
                else:
                    seen_dirs.add(real)
            found.append((root, files))
        for root, files in sorted(found):
            for file in sorted(files):
                path = os.path.join(root, file)
                real = os.path.realpath(path)
                if real in taken:
                    warnings.warn(f"skipping {path}: the same file as {real}, already in this dataset", stacklevel=2)
                elif _usable_image(path):
                    taken.add(real)
                    samples.append((path, class_to_idx[name]))
    empty = sorted(set(class_to_idx) - {name for name, i in class_to_idx.items() if any(i == s[1] for s in samples)})
    if empty:
        raise DataError(
            f"imagefolder {folder}: no usable image for the classes {', '.join(empty)} "
            f"(extensions: {', '.join(IMG_EXTENSIONS)})"
        )
    return samples


def _seeded_split(split: FolderSplit, fractions: list[float], seed: int) -> list[FolderSplit]:
    """``[rest, part_1, ...]``, each part the given fraction of every class (stratified: a small folder's
    validation set still holds every class), drawn with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor(split.targets)
    chosen: list[list[torch.Tensor]] = [[] for _ in range(len(fractions) + 1)]
    for label in labels.unique().tolist():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        start = 0
        for i, fraction in enumerate(fractions, 1):
            count = round(fraction * len(members))
            chosen[i].append(members[start : start + count])
            start += count
        chosen[0].append(members[start:])
    return [split.subset(torch.cat(parts).sort().values) for parts in chosen]


def _fraction(val_size: int | float, n: int) -> float:
    """``val_size`` as a fraction of ``n`` images (it may be given as a count)."""
    fraction = val_size if isinstance(val_size, float) else val_size / max(n, 1)
    if not 0 < fraction < 0.5:
        raise DataError(
            f"imagefolder val_size must be a fraction in (0, 0.5) or fewer than {n // 2} images, got {val_size}"
        )
    return fraction


def load_image_folder(path: Path, *, val_size: int | float = 0.1, seed: int = 42, channels: int = 3) -> Dataset:
    """Load ``imagefolder:PATH`` (see the module docstring); ``val_size`` applies where a split is carved."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataError(f"imagefolder: {path} is not a folder; give imagefolder:PATH with one sub-folder per class")
    base = path / "train" if (path / "train").is_dir() else path
    try:
        classes, class_to_idx = find_classes(str(base))
    except FileNotFoundError:
        raise DataError(f"imagefolder: no class sub-folders in {base}; expected {base}/<class>/<image files>") from None
    # Where the folder has its own splits, the evaluation ones keep a file that two splits hold; training loses it.
    taken: set[str] = set()
    test = val = None
    if base != path:
        test = FolderSplit(_scan(path / "test", class_to_idx, taken), channels) if (path / "test").is_dir() else None
        val = FolderSplit(_scan(path / "val", class_to_idx, taken), channels) if (path / "val").is_dir() else None
    train = FolderSplit(_scan(base, class_to_idx, taken), channels)
    if len(train) == 0:
        raise DataError(f"imagefolder: no readable images under {base}")
    if base == path:
        fraction = _fraction(val_size, len(train))
        train, val, test = _seeded_split(train, [fraction, fraction], seed)
    elif val is None:
        train, val = _seeded_split(train, [_fraction(val_size, len(train))], seed)
    splits = {"train": train, "val": val, **({"test": test} if test is not None else {})}
    return Dataset(f"imagefolder:{path}", classes, splits, channels=channels, image_size=None, root=path)
