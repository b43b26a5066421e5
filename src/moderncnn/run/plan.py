"""A run's settings resolved once, against its dataset and its hardware, into a frozen :class:`Plan`.

As timm's ``resolve_model_data_config``: the network's and the data's facts first, the user's settings over them,
one plain result. :func:`resolve` decides, in one place, the size images reach the network at (the one input-size
rule, :func:`resolve_resize`), the normalisation, and the ``auto`` speed choices with the reason for each. The
data module, the LightningModule and the Trainer receive the plan's values as explicit arguments, and
``config.yaml`` records :attr:`Plan.settings`: nothing rewrites a :class:`TrainConfig` once it is validated.

No code outside this module computes an input size (``tests/test_run_package.py`` greps for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from moderncnn.constants import IMAGENET_MEAN, IMAGENET_STD
from moderncnn.errors import ConfigError
from moderncnn.run.config import TrainConfig
from moderncnn.run.speed import Hardware, Speed

# The settings a plan decides when they are left open (``None`` or ``auto``): config.yaml records its decisions.
RESOLVED = ("resize", "precision", "channels_last", "compile", "threads")


def resolve_resize(config: TrainConfig, native: int | None, trained_size: int | None = None) -> int | None:
    """The one rule for the size images are resized to before they reach the network (``None``: keep theirs).

    For training (``trained_size`` unset): ``config.resize`` when given; else the network's own input size when the
    images vary in size (an image folder), when the ``d2l`` preset asks for the network's resolution, or when they
    are smaller than the network accepts (8 px digits for LeNet); else the images' own size. A run applies it once,
    in :func:`resolve`, before ``config.yaml`` is written, so the file says what was done. For a trained network
    (``trained_size``: the side it was trained on), see :func:`trained_resize`. With ``native=None`` and no data at
    hand, the answer is the side the network sees (``benchmark`` times each recipe network at it).

    Args:
        config: the settings (``model``, ``augment``, ``resize``).
        native: side of the dataset's (square) images, ``None`` when they vary.
        trained_size: side of the images a trained network saw.
    """
    if trained_size is not None:
        return trained_resize(native, trained_size)
    if config.resize is not None:
        return config.resize
    from moderncnn.registry import get_model_info

    info = get_model_info(config.model)
    if native is None or config.augment == "d2l" or native < info.min_input_size:
        return info.input_size
    return None


def input_size(config: TrainConfig, native: int | None) -> int:
    """Side of the images the network sees: :func:`resolve_resize`'s answer, else the images' own side
    (``native=None``: the network's, for images of mixed sizes or when no data is at hand)."""
    return resolve_resize(config, native) or native


def trained_resize(native: int | None, trained_size: int) -> int | None:
    """Images of any size other than the side a trained network saw are resized to that side (``None``: as they
    are)."""
    return None if native == trained_size else trained_size


def native_resize(model: str, native: int | None) -> int | None:
    """A recipe's ``resize: native``: the dataset's own side, raised to the smallest input ``model`` accepts
    (``None`` for images of mixed sizes, which the rule above then resizes to the network's input)."""
    from moderncnn.registry import get_model_info

    return None if native is None else max(native, get_model_info(model).min_input_size)


def check_resize(model: str, resize: int | None) -> None:
    """Refuse a ``resize`` below the smallest input ``model`` accepts, in one line."""
    from moderncnn.registry import get_model_info

    info = get_model_info(model)
    if resize is not None and 1 <= resize < info.min_input_size:
        raise ConfigError(
            f"resize {resize} is below the smallest input {model} accepts ({info.min_input_size} px); "
            f"give --resize {info.min_input_size} or more, or leave it out"
        )


def data_options(config: TrainConfig) -> dict:
    """The settings the data module takes (after the dataset), by name, as ``config`` gives them (``resize``,
    ``mean`` and ``std`` unresolved: a :class:`Plan` gives its own)."""
    return {
        "data_dir": config.data_dir,
        "val_size": config.val_size,
        "seed": config.seed,
        "batch_size": config.batch_size,
        "augment": config.augment,
        "resize": config.resize,
        "mean": config.mean,
        "std": config.std,
        "cache": config.cache,
        "cutout": config.cutout,
        "jpeg": config.jpeg,
        "jpeg_quality": tuple(config.jpeg_quality),
        "flip": config.flip,
        "num_workers": config.num_workers,
    }


def open_dataset(config: TrainConfig):
    """``config``'s dataset with its validation split; an image folder decoded once into memory when it fits (or as
    ``config.cache`` says), images of mixed sizes resized once to the size the rule gives them."""
    from moderncnn.data.cache import open_dataset as open_data

    size = resolve_resize(config, None)  # a cached folder of mixed sizes is resized once, to this
    return open_data(
        config.dataset,
        data_dir=config.data_dir,
        val_size=config.val_size,
        seed=config.seed,
        cache=config.cache,
        size=size,
    )


def normalisation(config: TrainConfig, dataset) -> tuple[list[float], list[float]]:
    """The per-channel mean and std images are normalised with: a recipe's published ones; the ones our weights
    were trained with when fine-tuning them; ImageNet's for ImageNet weights; else the data's own statistics."""
    if config.mean is not None:
        if len(config.mean) != dataset.channels:
            raise ConfigError(
                f"mean/std give {len(config.mean)} channel(s) but {config.dataset} has {dataset.channels}; give one "
                "value per channel or leave them out"
            )
        return list(config.mean), list(config.std)
    if config.init_from:
        from moderncnn.weights import get_weights_info

        weights = get_weights_info(config.init_from)
        if weights.in_channels == dataset.channels:  # the first layer expects what the weights were trained with
            return list(weights.mean), list(weights.std)
    if config.pretrained and dataset.channels == 3:
        # ImageNet weights expect ImageNet's normalisation (as torchvision's weights' transforms apply it).
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    from moderncnn.data import dataset_stats

    return dataset_stats(dataset)


def steps_per_epoch(train_images: int, batch_size: int, processes: int, limit_batches: float | None) -> int:
    """Optimiser steps per epoch across all ``processes``, after ``limit_batches``."""
    steps = max(1, train_images // (batch_size * processes))
    if limit_batches is not None:
        steps = min(steps, int(limit_batches) if limit_batches >= 1 else max(1, int(steps * limit_batches)))
    return steps


@dataclass(frozen=True)
class Plan:
    """A validated config resolved against its dataset and hardware: what the run does, decided once. Plain values
    only, so that what receives a plan reads its arguments, not a settings object.

    Attributes:
        settings: every setting with the plan's decisions written in (``TrainConfig.to_dict()``'s form): what
            ``config.yaml`` records, so ``--config`` repeats the run, and what each checkpoint saves.
        resize: the size images are resized to (``None``: their own).
        input_size: side of the images the network sees.
        num_classes, in_channels, class_names: the dataset's.
        mean, std: the per-channel normalisation.
        speed: the speed choices (precision, memory format, compilation, threads) and the reason for them.
        data: the data module's arguments after the dataset (``ImageDataModule(dataset, **plan.data)``).
    """

    settings: dict
    resize: int | None
    input_size: int
    num_classes: int
    in_channels: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    speed: Speed
    data: dict

    def module_options(self) -> dict:
        """The LightningModule's arguments (``ImageClassifier``): the settings saved in every checkpoint, the data's
        classes and normalisation, the input size and the memory format and compilation chosen."""
        return {
            "config": dict(self.settings),
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "class_names": list(self.class_names),
            "mean": list(self.mean),
            "std": list(self.std),
            "input_size": self.input_size,
            "channels_last": self.speed.channels_last,
            "compile": self.speed.compile,
        }

    def trainer_options(self) -> dict:
        """The Trainer's arguments the settings decide: where and how long it trains, at the plan's precision."""
        s, limit = self.settings, self.settings["limit_batches"]
        return {
            "accelerator": s["accelerator"],
            "devices": s["devices"],
            "num_nodes": s["num_nodes"],
            "strategy": s["strategy"],
            "precision": self.speed.precision,
            "max_epochs": s["epochs"],
            "limit_train_batches": limit,
            "limit_val_batches": limit,
            "limit_test_batches": limit,
        }

    def save(self, path: Path) -> None:
        """Write ``config.yaml``."""
        path.write_text(yaml.safe_dump(self.settings, sort_keys=False))


def resolve(config: TrainConfig, dataset, hardware: Hardware | None = None) -> Plan:
    """Resolve ``config`` (validated) for ``dataset`` (loaded, with its splits) on ``hardware`` (default: the
    hardware of ``config.accelerator``), once, before anything is written.

    Raises:
        ConfigError: a setting the data refuses (a cutout as large as the images, mean/std for other channels).
    """
    from moderncnn.run.speed import detect_hardware
    from moderncnn.run.speed import resolve as resolve_speed

    native = dataset.image_size
    if native is not None and config.cutout >= native:
        raise ConfigError(
            f"cutout {config.cutout} px blanks the whole {native} px image; give a smaller side (e.g. "
            f"{max(1, native // 2)}) or 0"
        )
    resize = resolve_resize(config, native)
    mean, std = normalisation(config, dataset)
    steps = steps_per_epoch(
        len(dataset.splits["train"]), config.batch_size, config.devices * config.num_nodes, config.limit_batches
    )
    speed = resolve_speed(
        config.precision,
        config.channels_last,
        config.compile,
        config.threads,
        deterministic=config.deterministic,
        limit_batches=config.limit_batches,
        epochs=config.epochs,
        steps_per_epoch=steps,
        hardware=hardware or detect_hardware(config.accelerator),
    )
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    return Plan(
        settings={**config.to_dict(), "resize": resize, **speed.settings()},
        resize=resize,
        input_size=native if resize is None else resize,
        num_classes=dataset.num_classes,
        in_channels=dataset.channels,
        class_names=tuple(dataset.classes),
        mean=mean,
        std=std,
        speed=speed,
        data={**data_options(config), "resize": resize, "mean": list(mean), "std": list(std)},
    )
