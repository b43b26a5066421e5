"""Datasets, their statistics, augmentation and loaders. Knows nothing of models.

``datasets`` reads the named datasets through torchvision and verifies their content; ``folder`` and
``synthetic`` provide ``imagefolder:PATH`` and generated data; ``stats`` computes normalisation statistics;
``augment`` holds the augmentation presets; ``loader`` is the device-resident loader.

Names are loaded on first use: reading and preprocessing an image (``predict``) then imports neither the dataset
readers nor torchvision, which takes as long to import as torch itself.
"""

import importlib
from typing import TYPE_CHECKING

from moderncnn.data.base import DataError, Dataset, Split, carve_validation, data_root

if TYPE_CHECKING:
    from moderncnn.data.augment import PRESETS, BatchAugment, reference_transform
    from moderncnn.data.datasets import load_dataset
    from moderncnn.data.loader import DeviceLoader, shard
    from moderncnn.data.stats import compute_stats, dataset_stats

_EXPORTS = {
    "PRESETS": "moderncnn.data.augment",
    "BatchAugment": "moderncnn.data.augment",
    "reference_transform": "moderncnn.data.augment",
    "load_dataset": "moderncnn.data.datasets",
    "DeviceLoader": "moderncnn.data.loader",
    "shard": "moderncnn.data.loader",
    "compute_stats": "moderncnn.data.stats",
    "dataset_stats": "moderncnn.data.stats",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'moderncnn.data' has no attribute {name!r}")


__all__ = [
    "PRESETS",
    "BatchAugment",
    "DataError",
    "Dataset",
    "DeviceLoader",
    "Split",
    "carve_validation",
    "compute_stats",
    "data_root",
    "dataset_stats",
    "load_dataset",
    "reference_transform",
    "shard",
]
