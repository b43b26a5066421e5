"""Per-channel mean and std of a dataset's training images, computed once and cached next to the data.

As in the UvA tutorial, the statistics are those of the official training split (for the named datasets
including the images carved out for validation), on pixel values scaled to [0, 1]; std is the population
standard deviation over all pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from moderncnn.data.base import Dataset, Split
from moderncnn.data.folder import decode

CACHE_NAME = "moderncnn-stats.json"


def _pixel_sums(images: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel sum and sum of squares of uint8 images ``(N, C, H, W)``, exact in int64."""
    total = torch.zeros(images.shape[1], dtype=torch.int64)
    squares = torch.zeros(images.shape[1], dtype=torch.int64)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].to(torch.int64)
        total += block.sum(dim=(0, 2, 3))
        squares += (block * block).sum(dim=(0, 2, 3))
    return total, squares, images.shape[0] * images.shape[2] * images.shape[3]


def split_sums(split) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Pixel sums of an in-memory :class:`Split` or, image by image, of a folder split."""
    if isinstance(split, Split):
        return _pixel_sums(split.images)
    total = torch.zeros(split.channels, dtype=torch.int64)
    squares = torch.zeros(split.channels, dtype=torch.int64)
    count = 0
    for path, _ in split.samples:
        t, s, n = _pixel_sums(decode(path, split.channels).unsqueeze(0))
        total, squares, count = total + t, squares + s, count + n
    return total, squares, count


def compute_stats(splits: list) -> tuple[list[float], list[float]]:
    """Mean and std per channel over all pixels of ``splits``, in [0, 1] units."""
    sums = [split_sums(s) for s in splits]
    total = sum(t for t, _, _ in sums).double()
    squares = sum(s for _, s, _ in sums).double()
    count = sum(n for _, _, n in sums)
    mean = total / count
    std = (squares / count - mean**2).clamp_min(0).sqrt()
    return (mean / 255).tolist(), (std / 255).tolist()


def _cache_key(dataset: Dataset) -> str:
    train = dataset.splits["train"]
    if "files_digest" in dataset.info:  # an image folder held in memory (data.cache): keyed by its files too
        return f"{dataset.name}:{len(train)}:{dataset.info['files_digest'][:12]}"
    sizes = [len(dataset.splits[s]) for s in ("train", "val") if s in dataset.splits]
    if isinstance(train, Split):
        return f"{dataset.name}:{sum(sizes)}x{'x'.join(map(str, train.images.shape[1:]))}"
    # An image folder: changes to its training files change the key.
    files = [(p, os.stat(p).st_size, os.stat(p).st_mtime_ns) for p, _ in train.samples]
    return f"{dataset.name}:{len(train)}:{hashlib.md5(repr(files).encode()).hexdigest()[:12]}"


def dataset_stats(dataset: Dataset, cache: bool = True) -> tuple[list[float], list[float]]:
    """Mean and std per channel of ``dataset``'s training images, cached in ``<root>/moderncnn-stats.json``."""
    named = isinstance(dataset.splits["train"], Split) and not dataset.name.startswith("imagefolder:")
    # Named datasets: the official training split, so the statistics do not depend on the validation size.
    names = ["train", "val"] if named and "val" in dataset.splits else ["train"]
    cache_file = Path(dataset.root) / CACHE_NAME if cache and dataset.root is not None else None
    key = _cache_key(dataset)
    stored = {}
    if cache_file is not None and cache_file.is_file():
        try:
            stored = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            stored = {}  # an unreadable cache is recomputed and rewritten
        if key in stored:
            return stored[key]["mean"], stored[key]["std"]
    mean, std = compute_stats([dataset.splits[n] for n in names])
    if cache_file is not None:
        stored[key] = {"mean": mean, "std": std}
        tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
        try:
            tmp.write_text(json.dumps(stored, indent=1))
            os.replace(tmp, cache_file)  # atomic: a concurrent reader never sees half a file
        except OSError:
            pass  # a read-only data root: the statistics are still correct, just not cached
    return mean, std


def describe(dataset: Dataset) -> dict:
    """What ``moderncnn data stats`` prints: split sizes and class counts, classes, mean and std."""
    mean, std = dataset_stats(dataset)
    splits = {}
    for name, split in dataset.splits.items():
        counts = torch.bincount(torch.as_tensor(split.targets, dtype=torch.int64), minlength=dataset.num_classes)
        splits[name] = {"size": len(split), "class_counts": counts.tolist()}
    return {
        "dataset": dataset.name,
        "splits": splits,
        "classes": dataset.classes,
        "channels": dataset.channels,
        "image_size": dataset.image_size,
        "mean": mean,
        "std": std,
    }
