"""Datasets, their statistics, augmentation and loaders. Knows nothing of models.

``datasets`` reads the named datasets through torchvision and verifies their content; ``folder`` and
``synthetic`` provide ``imagefolder:PATH`` and generated data; ``stats`` computes normalisation statistics;
``augment`` holds the augmentation presets; ``loader`` is the device-resident loader.
"""

from moderncnn.data.augment import PRESETS, BatchAugment, reference_transform
from moderncnn.data.base import DataError, Dataset, Split, carve_validation, data_root
from moderncnn.data.datasets import load_dataset
from moderncnn.data.loader import DeviceLoader, shard
from moderncnn.data.stats import compute_stats, dataset_stats

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
