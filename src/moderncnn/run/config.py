"""Every setting of a training run, its defaults per network, and its validation.

A run's ``config.yaml`` is :meth:`TrainConfig.to_dict` written out; ``--config FILE`` reads it back with
``yaml.safe_load``, so a run can be repeated exactly. Defaults follow the source each network comes
from: the textbook's ``train_ch6`` settings for its networks (Fashion-MNIST, plain SGD, Xavier
initialisation, 10 epochs, resized to the network's input), the UvA tutorial's / He et al.'s CIFAR-10
settings for the CIFAR networks, and torchvision's ImageNet reference recipe for its networks.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from moderncnn.constants import (
    AUGMENT_PRESETS,
    FLIP_MODES,
    INITS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    SWITCHES,
    TEST_CHECKPOINTS,
    TTA_VIEWS,
)
from moderncnn.errors import ConfigError, UsageError


def setting(default=None, help: str = "", choices: tuple | None = None, factory=None, flag: bool = True, const=None):
    """A field of :class:`TrainConfig` with what the command line shows for it (its help and choices), kept beside
    the default so that ``moderncnn train --help`` is generated from here and cannot drift."""
    metadata = {"help": help, "choices": choices, "flag": flag, "const": const}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrainConfig:
    """The settings of one training run (``moderncnn train --help`` lists each, generated from these fields).

    Frozen: a validated config is never rewritten; a changed copy is ``dataclasses.replace(config, name=value)``,
    and what a run resolves (its size, its speed choices) is its :class:`~moderncnn.run.plan.Plan`'s.
    """

    model: str = setting(help="registry name (see `moderncnn models`)", flag=False)
    dataset: str = setting(
        "fashion-mnist", "fashion-mnist, mnist, cifar10, cifar100, digits, imagefolder:PATH or synthetic[:options]"
    )
    model_kwargs: dict = setting(help="options of the network's builder as YAML, e.g. '{width_ratio: 4}'", factory=dict)
    data_dir: str | None = setting(None, "data root (default: $MODERNCNN_DATA, else ~/.cache/moderncnn/data)")
    val_size: int | float = setting(0, "validation images carved from train (count, or fraction if < 1; 0: none)")
    epochs: int = setting(10, "passes over the training split")
    batch_size: int = setting(256, "images per step (per device)")
    lr: float = setting(0.1, "learning rate (the peak rate with warm-up or onecycle)")
    optimizer: str = setting(
        "sgd",
        "optimiser (muon: torch.optim.Muon on the convolution filters, SGD with --momentum/--nesterov on the rest, as "
        "airbench94; Jordan et al. 2024)",
        OPTIMIZERS,
    )
    momentum: float = setting(0.0, "SGD momentum")
    nesterov: bool = setting(False, "Nesterov momentum (sgd with momentum)")
    weight_decay: float = setting(0.0, "L2 weight decay")
    muon_lr: float = setting(0.24, "Muon's learning rate for the convolution filters (airbench94: 0.24)")
    muon_momentum: float = setting(0.6, "Muon's Nesterov momentum (airbench94: 0.6)")
    classifier_lr: float | None = setting(
        None, "learning rate of the classifier layer (default: --lr; airbench94's head: 12.6 times its biases')"
    )
    schedule: str = setting(
        "none", "learning-rate schedule (linear: a straight line to 0 at the last step, as airbench94)", SCHEDULES
    )
    milestones: list[int] = setting(help="epochs where multistep multiplies the rate by gamma", factory=list)
    gamma: float = setting(0.1, "multistep's factor")
    warmup_epochs: int | float = setting(0, "linear learning-rate warm-up epochs (fractions allowed)")
    label_smoothing: float = setting(0.0, "cross-entropy label smoothing")
    norm_weight_decay: float | None = setting(
        None, "weight decay of normalisation layers and biases (default: --weight-decay; torchvision's recipe: 0)"
    )
    mixup: float = setting(0.0, "MixUp's alpha: training batches blend image pairs and their labels (0: off)")
    cutmix: float = setting(
        0.0, "CutMix's alpha: a box of one image pasted into another, labels by area (0: off; with --mixup, either)"
    )
    cutout: int = setting(0, "side in pixels of a square blanked at a random place in each training image (0: off)")
    jpeg: float = setting(
        0.0,
        "fraction of training batches re-encoded as JPEG at a random quality (torchvision's v2.JPEG; 0: off, 1: "
        "every batch): robustness to the JPEG files users have",
    )
    jpeg_quality: list[int] = setting(
        help="lowest and highest JPEG quality drawn (default: 50 95)", factory=lambda: [50, 95]
    )
    ema: float = setting(
        0.0, "decay of an average of the weights used to validate, test and save the network (0: off; e.g. 0.999)"
    )
    tta: bool | str = setting(
        False,
        "test-time augmentation at the test and (see --tta-val) each validation, logits averaged over views: "
        "flip (each image and its mirror; --tta alone) or flip-shift (airbench94: those two, then both again "
        "shifted 1 px up-left and 1 px down-right with reflected borders, weighted 1/2, 1/4, 1/4)",
        TTA_VIEWS,
        const="flip",
    )
    tta_val: bool = setting(
        True,
        "average the --tta views at each epoch's validation too (false: one view per epoch and the views at the "
        "test only, as airbench94's script does: with flip-shift a validation costs six forward passes per image)",
    )
    init: str = setting("default", "weight initialisation", INITS)
    classifier_bias: float | None = setting(
        None,
        "start the classifier's biases at this value (default: as --init leaves them); a positive value keeps a "
        "class map behind a ReLU alive in the first steps, as NiN's needs (Krizhevsky et al. 2012 started ReLU "
        "biases at 1)",
    )
    augment: str = setting(
        "none",
        "augmentation preset (airbench: random shifts of up to 2 px with reflected borders, and mirroring)",
        AUGMENT_PRESETS,
    )
    flip: str = setting(
        "random",
        "how presets that mirror choose: random (a coin per image each epoch) or alternate (airbench94: a coin per "
        "image in the first epoch, then every image mirrored relative to it on every other epoch)",
        FLIP_MODES,
    )
    bn_momentum: float | None = setting(
        None, "momentum of every BatchNorm layer, torch's convention (weight of the new batch; default: the network's)"
    )
    bn_eps: float | None = setting(None, "epsilon of every BatchNorm layer (default: the network's)")
    resize: int | None = setting(None, "resize images to this size (default: as the network and preset need)")
    mean: list[float] | None = setting(None, "fixed normalisation mean per channel (default: the data's own)")
    std: list[float] | None = setting(None, "fixed normalisation std per channel (with --mean)")
    test_checkpoint: str = setting("last", "checkpoint tested at the end", TEST_CHECKPOINTS)
    pretrained: str | None = setting(
        None,
        "start from torchvision's ImageNet weights (torchvision networks; downloaded once), or from a .pth state "
        "dict at PATH; a classifier for another class count starts fresh, 1-channel input sums the first "
        "convolution over RGB",
        const="imagenet",
    )
    init_from: str | None = setting(
        None,
        "start from our published weights (weights:NETWORK-DATASET, see `moderncnn weights`; MODEL defaults to its "
        "network): every tensor, but a classifier for another class count starts fresh; the weights' normalisation "
        "is kept when the channels match",
    )
    freeze_backbone: bool = setting(False, "train only the classifier (needs --pretrained or --init-from)")
    precision: str = setting(
        "auto",
        "numeric precision (auto: bf16 where the CPU or GPU computes it natively, fp16 on older tensor-core GPUs, "
        "else fp32)",
        PRECISIONS,
    )
    accelerator: str = setting("auto", "cpu, gpu or auto")
    devices: int = setting(1, "devices (processes) per node")
    strategy: str = setting("auto", "Lightning strategy, e.g. ddp")
    num_nodes: int = setting(1, "nodes")
    compile: bool | str = setting(
        "auto", "torch.compile the network (auto: runs of 21,000 steps or more, never with --limit-batches)", SWITCHES
    )
    channels_last: bool | str = setting(
        "auto", "channels-last memory format (auto: on the CPU; on a GPU with mixed precision)", SWITCHES
    )
    threads: int | None = setting(None, "CPU threads (default: one per free core, re-checked every 2 s)")
    deterministic: bool = setting(
        False, "repeat bit for bit: fp32, contiguous, eager, a fixed thread count (overrides the auto choices)"
    )
    cache: bool | None = setting(
        None,
        "image folders: decode once into memory, then serve them like the named datasets (default: when the decoded "
        "images fit a quarter of the RAM; --cache forces it, --no-cache reads them with a DataLoader every epoch)",
    )
    seed: int = setting(42, "seed of initialisation, data order and augmentation")
    limit_batches: int | float | None = setting(None, "batches per epoch (count, or fraction if < 1), for quick checks")
    checkpoint_every: int | str = setting(
        "10min",
        "also write last.ckpt inside an epoch every N steps (500) or every so long (30s, 10min, 2h); 0 or off: only "
        "at epoch ends (as with several processes)",
    )
    num_workers: int = setting(2, "DataLoader workers for image folders")
    run_dir: str | None = setting(None, "run directory (default: runs/<model>-<dataset>-<time>)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def defaults() -> dict:
        """Every setting's default (``model`` has none: ``None``)."""
        return {
            f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            for f in dataclasses.fields(TrainConfig)
        }

    def save(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Settings from a mapping, each checked against its field's type first (one error naming the setting)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown settings {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        if "model" not in values:
            raise ConfigError("the config names no model; add `model: NAME`")
        hints = _field_types()
        return cls(**{name: check_type(name, value, hints[name]) for name, value in values.items()})

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"cannot read config {path}: {err}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"config {path} must be a mapping of settings, got {type(values).__name__}")
        return cls.from_dict(values)

    def validate(self) -> TrainConfig:
        """Raise a one-line ``ValueError`` for the first invalid setting; return self."""
        from moderncnn.registry import get_model_info  # here, not at the top: reading the fields must not load torch
        from moderncnn.run.plan import check_resize

        get_model_info(self.model)  # unknown model: error with the closest names
        check_resize(self.model, self.resize)
        for f in dataclasses.fields(self):  # settings built in Python skip from_dict: check their types here too
            check_type(f.name, getattr(self, f.name), _field_types()[f.name])
        checks = [
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
            (self.init in INITS, f"init must be one of {', '.join(INITS)}, got {self.init!r}"),
            (self.flip in FLIP_MODES, f"flip must be one of {', '.join(FLIP_MODES)}, got {self.flip!r}"),
            (
                isinstance(self.tta, bool) or self.tta in (*TTA_VIEWS, "true", "false"),
                f"tta must be one of {', '.join(TTA_VIEWS)}, got {self.tta!r}",
            ),
            (self.muon_lr > 0, f"muon_lr must be positive, got {self.muon_lr}"),
            (0 <= self.muon_momentum < 1, f"muon_momentum must be in [0, 1), got {self.muon_momentum}"),
            (
                self.classifier_lr is None or self.classifier_lr > 0,
                f"classifier_lr must be positive, got {self.classifier_lr}",
            ),
            (
                self.bn_momentum is None or 0 <= self.bn_momentum <= 1,
                f"bn_momentum must be in [0, 1] (torch's convention: the new batch's weight), got {self.bn_momentum}",
            ),
            (self.bn_eps is None or self.bn_eps > 0, f"bn_eps must be positive, got {self.bn_eps}"),
            (
                self.augment in AUGMENT_PRESETS,
                f"augment must be one of {', '.join(AUGMENT_PRESETS)}, got {self.augment!r}",
            ),
            (
                self.test_checkpoint in TEST_CHECKPOINTS,
                f"test_checkpoint must be one of {', '.join(TEST_CHECKPOINTS)}, got {self.test_checkpoint!r}",
            ),
            (self.dataset != "", "dataset must name a dataset, got an empty string"),
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"weight_decay must be non-negative, got {self.weight_decay}"),
            (0 <= self.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {self.label_smoothing}"),
            (
                self.norm_weight_decay is None or self.norm_weight_decay >= 0,
                f"norm_weight_decay must be non-negative, got {self.norm_weight_decay}",
            ),
            (self.mixup >= 0, f"mixup must be 0 (off) or a positive alpha, got {self.mixup}"),
            (self.cutmix >= 0, f"cutmix must be 0 (off) or a positive alpha, got {self.cutmix}"),
            (self.cutout >= 0, f"cutout must be 0 (off) or a side in pixels, got {self.cutout}"),
            (0 <= self.jpeg <= 1, f"jpeg must be a fraction of batches in [0, 1] (0: off), got {self.jpeg}"),
            (
                len(self.jpeg_quality) == 2 and 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100,
                f"jpeg_quality must be two qualities LOW HIGH with 1 <= LOW <= HIGH <= 100, got {self.jpeg_quality}",
            ),
            (0 <= self.ema < 1, f"ema must be a decay in [0, 1) (0: off; e.g. 0.999), got {self.ema}"),
            (self.gamma > 0, f"gamma must be positive, got {self.gamma}"),
            (all(m >= 1 for m in self.milestones), f"milestones must be epochs (1 or more), got {self.milestones}"),
            (self.devices >= 1, f"devices must be at least 1, got {self.devices}"),
            (self.num_nodes >= 1, f"num_nodes must be at least 1, got {self.num_nodes}"),
            (self.num_workers >= 0, f"num_workers must be 0 or more, got {self.num_workers}"),
            (self.val_size >= 0, f"val_size must be 0 or more (a count, or a fraction below 1), got {self.val_size}"),
            (self.resize is None or self.resize >= 1, f"resize must be a positive size, got {self.resize}"),
            (
                (self.mean is None) == (self.std is None)
                and (self.std is None or (len(self.mean) == len(self.std) and min(self.std) > 0)),
                f"mean and std go together, one positive std per mean; got mean {self.mean}, std {self.std}",
            ),
            (0 <= self.warmup_epochs < self.epochs, f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs}"),
            (
                not self.nesterov or (self.optimizer in ("sgd", "muon") and self.momentum > 0),
                "nesterov needs sgd (or muon, for its SGD part) with momentum",
            ),
            (
                isinstance(self.compile, bool) or self.compile in SWITCHES,
                f"compile must be one of {', '.join(SWITCHES)}, got {self.compile!r}",
            ),
            (
                isinstance(self.channels_last, bool) or self.channels_last in SWITCHES,
                f"channels_last must be one of {', '.join(SWITCHES)}, got {self.channels_last!r}",
            ),
            (self.threads is None or self.threads >= 1, f"threads must be at least 1, got {self.threads}"),
            (
                self.limit_batches is None or self.limit_batches > 0,
                f"limit_batches must be positive (a count, or a fraction of each epoch), got {self.limit_batches}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        checkpoint_interval(self.checkpoint_every)  # its own one-line error
        if self.freeze_backbone and not (self.pretrained or self.init_from):
            raise ConfigError(
                "freeze_backbone needs pretrained weights (--pretrained, --pretrained PATH or --init-from)"
            )
        if self.init_from:
            self._check_init_from()
        if self.pretrained == "imagenet":
            from moderncnn.models.pretrained import supports_pretrained

            if not supports_pretrained(self.model):
                raise ConfigError(
                    f"torchvision has no ImageNet weights for {self.model}; --pretrained works with the torchvision "
                    "networks (alexnet, vgg*, googlenet, inception_v3, resnet18-152, densenet121-201), or give a "
                    "weights file path"
                )
        return self

    def _check_init_from(self) -> None:
        from moderncnn.weights import get_weights_info

        if self.pretrained:
            raise ConfigError("init_from and pretrained both give the starting weights; use one")
        try:
            weights = get_weights_info(self.init_from)
        except UsageError as err:
            raise ConfigError(f"init_from: {err}") from None
        if weights.network != self.model:
            raise ConfigError(
                f"init_from {self.init_from} holds a {weights.network}, not a {self.model}; train {weights.network} "
                "(leave MODEL out to take the weights' network), or pick weights of this network"
            )


_TIME_UNITS = {"s": 1, "min": 60, "h": 3600}


def tta_views(tta: bool | str) -> str:
    """The views of a ``tta`` setting: ``none``, ``flip`` or ``flip-shift`` (``true`` is ``flip``, as ``--tta``
    alone and configs written before multi-view TTA say)."""
    if tta is True or tta == "true":
        return "flip"
    if tta is False or tta == "false":
        return "none"
    return tta


def checkpoint_interval(every: int | str) -> tuple[int, float]:
    """``checkpoint_every`` as (steps, seconds) between checkpoints inside an epoch: ``500`` or ``"500"`` is
    (500, 0), ``"10min"`` is (0, 600.0), ``0`` or ``"off"`` is (0, 0.0)."""
    text = str(every).strip().lower()
    if text == "off":
        return 0, 0.0
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|min|h)?", text)
    if match is None or (match[2] is None and "." in match[1]):
        raise ConfigError(
            f"checkpoint_every must be a number of steps (500), a time (30s, 10min, 2h), or 0 or off; got {every!r}"
        )
    if match[2] is None:
        return int(match[1]), 0.0
    return 0, float(match[1]) * _TIME_UNITS[match[2]]


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
    "inception_bn": {"batch_size": 128, "lr": 0.1, "resize": 96},  # as googlenet_d2l: same input and stage layout
    "resnet18_d2l": {"batch_size": 256, "lr": 0.05, "resize": 96},
    "densenet_d2l": {"batch_size": 256, "lr": 0.1, "resize": 96},
    "googlenet_uva": {"optimizer": "adamw", "lr": 1e-3, "momentum": 0.0, "weight_decay": 1e-4},
    "densenet_uva": {"optimizer": "adamw", "lr": 1e-3, "momentum": 0.0, "weight_decay": 1e-4},
    **{f"resnet{d}": {"augment": "cifar", "epochs": 164, "milestones": [82, 123]} for d in (20, 32, 44, 56, 110)},
}


def default_settings(model: str) -> dict:
    """The defaults for ``model``: its variant's, overridden by its own."""
    from moderncnn.registry import get_model_info

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


@functools.cache
def _field_types() -> dict[str, object]:
    return typing.get_type_hints(TrainConfig)


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping"}


def check_type(name: str, value, expected):
    """``value`` if it has the type ``expected`` (a field's annotation), else a :class:`ConfigError` that names the
    setting, the value and what is valid. Generated from the annotations, so a new field is checked the day it is
    added. An integer is accepted for a float field and converted."""
    options = typing.get_args(expected) if isinstance(expected, types.UnionType) else (expected,)
    for option in options:
        if option is type(None) and value is None:
            return None
        origin = typing.get_origin(option)
        if origin is list and isinstance(value, list):
            (item,) = typing.get_args(option)
            return [check_type(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) if int not in options else value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option in (str, bool, dict) and isinstance(value, option):
            return value
    wanted = " or ".join(_describe(option) for option in options)
    raise ConfigError(f"setting {name!r} must be {wanted}, got {value!r} ({type(value).__name__})")


def _describe(option) -> str:
    if option is type(None):
        return "null"
    if typing.get_origin(option) is list:
        return f"a list of {_describe(typing.get_args(option)[0]).removeprefix('an ').removeprefix('a ')}s"
    return _TYPE_NAMES.get(option, getattr(option, "__name__", str(option)))


def config_from(
    model: str | None = None, config_file: str | Path | None = None, *, recipe: str | None = None, **overrides
) -> TrainConfig:
    """A validated config from what a user gives: a network's defaults (:func:`make_config`), a recipe's budget over
    them, or an earlier run's ``config.yaml``, with ``overrides`` (``None`` values ignored) winning either way;
    ``model`` may swap the network of a config file.

    Args:
        model: the network (may be left out with ``config_file``, or with ``init_from``: the weights' network).
        config_file: an earlier run's ``config.yaml``.
        recipe: ``RECIPE:BUDGET`` or a budget alone (``fast``: the bundled recipe for this network or dataset), as
            ``moderncnn train --recipe`` takes it (:func:`moderncnn.run.recipes.recipe_settings`).
        overrides: settings that win over the rest.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if recipe is not None:
        if config_file is not None:
            raise UsageError("--recipe and --config both give every setting; use one (flags may adjust either)")
        if not model:
            raise UsageError("--recipe needs a MODEL to train, e.g. `moderncnn train resnet20 --recipe fast`")
        from moderncnn.run.recipes import recipe_settings

        base = recipe_settings(recipe, model, dataset=given.get("dataset"), data_dir=given.get("data_dir"))
        given = {**base, **given}
    if not model and config_file is None and given.get("init_from"):
        from moderncnn.weights import get_weights_info

        model = get_weights_info(given["init_from"]).network  # fine-tuning names its network through its weights
    if config_file is not None:
        values = {**TrainConfig.load(config_file).to_dict(), **given}
        if model:
            values["model"] = model
        return TrainConfig.from_dict(values).validate()
    if not model:
        raise ConfigError("name a MODEL (see `moderncnn models`), or give a config file (--config) or a run to resume")
    return make_config(model, **given)


def describe_defaults() -> list[str]:
    """Lines saying where defaults come from: per variant, then per network, then the fields' own."""
    lines = ["defaults by variant (then by network):"]
    for variant, values in _BY_VARIANT.items():
        lines.append(f"  {variant}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    for model, values in _BY_MODEL.items():
        lines.append(f"  {model}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    plain = [f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("flag") and f.name != "run_dir"]
    defaults = TrainConfig.defaults()
    lines.append("  otherwise: " + ", ".join(f"{name}={defaults[name]}" for name in plain))
    return lines
