"""What only the loaded data, the built network or a checkpoint can tell about a run's settings, checked before the
run writes anything: each problem is one line naming the setting or the input (a ``ModernCNNError``), never a
traceback from Lightning or torch half-way through an epoch.
"""

from __future__ import annotations

import math

from torch import nn

from moderncnn.errors import CheckpointError, ConfigError, DataError
from moderncnn.run.config import TrainConfig

# Settings that decide what the weights mean: a resumed run whose config.yaml differs from its checkpoint in one of
# them would train the weights on other inputs (another size, dataset or normalisation) or fail to load them.
MEANING = ("model", "model_kwargs", "dataset", "resize", "mean", "std", "val_size")


def check_data(
    dataset, *, name: str, batch_size: int, processes: int, val_size: int | float, limit_batches: int | float | None
) -> None:
    """The splits of ``dataset`` (called ``name``) hold images, a training batch of ``batch_size`` fits in each of
    the ``processes``' shares of the training split, and ``limit_batches`` leaves a batch.

    Raises:
        DataError: a class count below two, or an empty split.
        ConfigError: ``batch_size`` or ``limit_batches`` that would train on nothing (``val_size`` set: the advice
            names it too).
    """
    if dataset.num_classes < 2:
        raise DataError(
            f"{name} has {dataset.num_classes} class ({', '.join(dataset.classes)}); a classifier needs two or more "
            "(for an image folder: one sub-folder per class)"
        )
    sizes = {split: len(images) for split, images in dataset.splits.items()}
    for split, size in sizes.items():
        if size == 0:
            raise DataError(
                f"{name}: its {split} split is empty ({', '.join(f'{k} {v}' for k, v in sizes.items())} images); "
                "add images, or give a folder its own train/val/test sub-folders"
            )
    train = sizes["train"] // processes
    where = f"the training split of {name} ({train:,} images" + (" per process)" if processes > 1 else ")")
    if batch_size > train:
        raise ConfigError(
            f"batch_size {batch_size} is larger than {where}, so no full batch would train; use --batch-size "
            f"{train} or less" + (" (or a smaller --val-size)" if val_size else "")
        )
    limit = limit_batches
    if isinstance(limit, float) and limit < 1:
        batches = {"train": train // batch_size}
        batches.update({s: math.ceil(n / processes / batch_size) for s, n in sizes.items() if s != "train"})
        for split, count in batches.items():
            if int(count * limit) == 0:
                raise ConfigError(
                    f"limit_batches {limit:g} of the {count} batches of the {split} split is no batch at all; give "
                    f"at least {1 / count:.2g}, or a count of batches (e.g. --limit-batches 1)"
                )


def check_network(net: nn.Module, *, model: str, batch_size: int) -> None:
    """A network with BatchNorm (the registry's ``model``) needs two images per training batch (its statistics are
    per batch).

    Raises:
        ConfigError: ``batch_size`` 1 with BatchNorm.
    """
    if batch_size == 1 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        raise ConfigError(
            f"batch_size 1 with {model}, which has BatchNorm: its statistics need at least 2 images per "
            "batch; use --batch-size 2 or more"
        )


def check_resumable(config: TrainConfig, saved: dict, checkpoint) -> None:
    """``config`` (the run's ``config.yaml``) agrees with ``saved`` (the settings inside its checkpoint) on every
    setting in :data:`MEANING`.

    Raises:
        CheckpointError: naming each setting that differs, both values, and what to do.
    """
    ours = config.to_dict()
    changed = [key for key in MEANING if key in saved and saved[key] != ours.get(key)]
    if changed:
        diffs = ", ".join(
            f"{key} {saved[key]!r} in the checkpoint but {ours.get(key)!r} in config.yaml" for key in changed
        )
        raise CheckpointError(
            f"cannot resume: {diffs}; these decide what the weights of {checkpoint} mean; put config.yaml back as it "
            "was, or start a new run with the new settings"
        )
