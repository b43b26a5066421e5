"""Every setting of a training run, its defaults per network, and its validation.

A run's ``config.yaml`` is :meth:`TrainConfig.to_dict` written out; ``--config FILE`` reads it back with
``yaml.safe_load``, so a run can be repeated exactly. Defaults follow the source each network comes
from: the textbook's ``train_ch6`` settings for its networks (Fashion-MNIST, plain SGD, Xavier
initialisation, 10 epochs, resized to the network's input), the UvA tutorial's / He et al.'s CIFAR-10
settings for the CIFAR networks, and torchvision's ImageNet reference recipe for its networks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from moderncnn.registry import get_model_info

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "multistep", "cosine", "onecycle")
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
INITS = ("default", "xavier", "kaiming")


@dataclass
class TrainConfig:
    """The settings of one training run (see ``moderncnn train --help`` for each)."""

    model: str
    dataset: str = "fashion-mnist"
    model_kwargs: dict = field(default_factory=dict)
    data_dir: str | None = None
    val_size: int | float = 0
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "none"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    init: str = "default"
    augment: str = "none"
    resize: int | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    test_checkpoint: str = "last"
    pretrained: str | None = None
    freeze_backbone: bool = False
    precision: str = "32"
    accelerator: str = "auto"
    devices: int = 1
    strategy: str = "auto"
    num_nodes: int = 1
    compile: bool = False
    channels_last: bool = False
    seed: int = 42
    limit_batches: float | None = None
    num_workers: int = 2
    run_dir: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown settings {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        if "model" not in values:
            raise ValueError("the config names no model; add `model: NAME`")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"cannot read config {path}: {err}") from None
        if not isinstance(values, dict):
            raise ValueError(f"config {path} must be a mapping of settings, got {type(values).__name__}")
        return cls.from_dict(values)

    def validate(self) -> TrainConfig:
        """Raise a one-line ``ValueError`` for the first invalid setting; return self."""
        get_model_info(self.model)  # unknown model: error with the closest names
        checks = [
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
            (self.init in INITS, f"init must be one of {', '.join(INITS)}, got {self.init!r}"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"weight decay must be non-negative, got {self.weight_decay}"),
            (0 <= self.label_smoothing < 1, f"label smoothing must be in [0, 1), got {self.label_smoothing}"),
            (self.devices >= 1 and self.num_nodes >= 1, "devices and num_nodes must be at least 1"),
            (self.resize is None or self.resize >= 1, f"resize must be a positive size, got {self.resize}"),
            (
                self.test_checkpoint in ("last", "best"),
                f"test checkpoint must be last or best, got {self.test_checkpoint!r}",
            ),
            (
                (self.mean is None) == (self.std is None)
                and (self.std is None or (len(self.mean) == len(self.std) and min(self.std) > 0)),
                f"mean and std go together, one positive std per mean; got mean {self.mean}, std {self.std}",
            ),
            (0 <= self.warmup_epochs < self.epochs, f"warmup epochs must be in [0, epochs), got {self.warmup_epochs}"),
            (not self.nesterov or (self.optimizer == "sgd" and self.momentum > 0), "nesterov needs sgd with momentum"),
            (
                self.limit_batches is None or self.limit_batches > 0,
                f"limit batches must be positive (a count, or a fraction of each epoch), got {self.limit_batches}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.freeze_backbone and not self.pretrained:
            raise ValueError("freeze backbone needs pretrained weights (--pretrained or --pretrained PATH)")
        if self.pretrained == "imagenet":
            from moderncnn.models.pretrained import supports_pretrained

            if not supports_pretrained(self.model):
                raise ValueError(
                    f"torchvision has no ImageNet weights for {self.model}; --pretrained works with the torchvision "
                    "networks (alexnet, vgg*, googlenet, resnet18-152, densenet121-201), or give a weights file path"
                )
        from moderncnn.data.augment import PRESETS

        if self.augment not in PRESETS:
            raise ValueError(f"augment must be one of {', '.join(PRESETS)}, got {self.augment!r}")
        return self


# Settings by source. Textbook: D2L's train_ch6 (plain SGD, Xavier init, 10 epochs on Fashion-MNIST, resized to
# the network's input). CIFAR: He et al. 2016 / the UvA tutorial 5. torchvision: its ImageNet reference recipe.
_BY_VARIANT = {
    "textbook": {"dataset": "fashion-mnist", "epochs": 10, "optimizer": "sgd", "init": "xavier", "augment": "d2l"},
    "cifar": {
        "dataset": "cifar10",
        "val_size": 5000,
        "epochs": 180,
        "batch_size": 128,
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "multistep",
        "milestones": [100, 150],
        "augment": "uva",
    },
    "torchvision": {
        "dataset": "cifar10",
        "val_size": 5000,
        "epochs": 90,
        "batch_size": 128,
        "lr": 0.1,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "augment": "cifar",
    },
}

# Per network: the textbook's (resize, batch, lr) for Fashion-MNIST; the UvA tutorial's optimisers.
_BY_MODEL = {
    "lenet": {"batch_size": 256, "lr": 0.9, "augment": "none"},
    "lenet_bn": {"batch_size": 256, "lr": 1.0, "augment": "none"},
    "alexnet_d2l": {"batch_size": 128, "lr": 0.01, "resize": 224},
    "vgg_d2l": {"batch_size": 128, "lr": 0.05, "resize": 224, "model_kwargs": {"width_ratio": 4}},
    "nin": {"batch_size": 128, "lr": 0.1, "resize": 224},
    "googlenet_d2l": {"batch_size": 128, "lr": 0.1, "resize": 96},
    "resnet18_d2l": {"batch_size": 256, "lr": 0.05, "resize": 96},
    "densenet_d2l": {"batch_size": 256, "lr": 0.1, "resize": 96},
    "googlenet_uva": {"optimizer": "adamw", "lr": 1e-3, "momentum": 0.0, "weight_decay": 1e-4},
    "densenet_uva": {"optimizer": "adamw", "lr": 1e-3, "momentum": 0.0, "weight_decay": 1e-4},
    **{f"resnet{d}": {"augment": "cifar", "epochs": 164, "milestones": [82, 123]} for d in (20, 32, 44, 56, 110)},
}


def default_settings(model: str) -> dict:
    """The defaults for ``model``: its variant's, overridden by its own."""
    info = get_model_info(model)
    return {**_BY_VARIANT[info.variant], **_BY_MODEL.get(model, {})}


# Validation sizes for datasets of their own size, used when the network's default is a count for another dataset
# (5,000 CIFAR-10 images) and no size is given: a tenth of an image folder, the digits' documented 180.
_VAL_SIZE_BY_DATASET = {"imagefolder": 0.1, "digits": 180}


def make_config(model: str, **overrides) -> TrainConfig:
    """A validated config: ``model``'s defaults, then ``overrides`` (``None`` values are ignored)."""
    values = {"model": model, **default_settings(model)}
    given = {k: v for k, v in overrides.items() if v is not None}
    dataset = str(given.get("dataset", values.get("dataset", ""))).split(":")[0]
    if "val_size" not in given and values.get("val_size") and dataset in _VAL_SIZE_BY_DATASET:
        values["val_size"] = _VAL_SIZE_BY_DATASET[dataset]
    values.update(given)
    return TrainConfig.from_dict(values).validate()
