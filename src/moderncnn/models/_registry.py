"""The model registry: every network by name, with the facts a user needs before building it.

Each family file keeps its facts as data, one ``default_cfgs`` table (timm's convention) with an entry per network,
and marks its public builders with a bare ``@register_model``, which files the builder under its function name with
the facts of that name. Everything else in the package (summary, CLI, training engine) reaches a network only
through :func:`create_model`. This module imports nothing of moderncnn but its errors, so the family files can
import it without a cycle; ``moderncnn.registry`` is the public face of it.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

from torch import nn

from moderncnn.errors import ModelError

VARIANTS = ("textbook", "torchvision", "cifar")
# The families in the order the chapter introduces them (Inception v2/v3 right after GoogLeNet, whose successors
# they are); a family outside this list (registered by a user) comes after them.
FAMILIES = ("lenet", "alexnet", "vgg", "nin", "googlenet", "inception", "resnet", "densenet", "airbench")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one network.

    Attributes:
        name: registry name, e.g. ``"resnet18"``.
        family: one of :data:`FAMILIES`, e.g. ``"resnet"``.
        variant: ``textbook`` (Dive into Deep Learning), ``torchvision`` (the paper as torchvision builds it,
            loads its state dict) or ``cifar`` (small-image networks for 32 px inputs).
        input_size: the side of the square input the network is meant for.
        min_input_size: the smallest side the network accepts.
        in_channels: default number of input channels.
        classifier: dotted path of the last layer, the one that produces the class logits.
        source: where the architecture comes from (paper, book section, tutorial).
        feature_layer: dotted path of the module whose output is the network's last spatial feature map, the one
            that global pooling or flattening turns into the classifier's input (what Grad-CAM and feature maps
            look at), e.g. ``layer4`` of a torchvision ResNet.
        fixed_input_size: True when the classifier is sized for exactly ``input_size`` (the textbook
            networks that flatten feature maps into a ``Linear``); build with ``input_size=N`` to change it.
        aux_loss_weight: weight of each auxiliary classifier's loss in training (GoogLeNet's and Inception-v3's
            side heads, when built with ``aux_logits=True``); 0 for networks without auxiliary heads.
        data_init_images: how many training images (normalised, as evaluation sees them) a fresh network's
            ``init_from_data(images)`` is given before training starts (airbench94's patch whitening); 0 for
            networks that initialise without data.
        published: test accuracies the source reports for the network as it trains it, by dataset:
            ``{"cifar10": {"test_acc": 0.9125, "where": "table 6"}}``; what a model card compares our weights with
            when no recipe of ours trains the network.
    """

    name: str
    family: str
    variant: str
    input_size: int
    min_input_size: int
    in_channels: int
    classifier: str
    source: str
    feature_layer: str
    fixed_input_size: bool = False
    aux_loss_weight: float = 0.0
    data_init_images: int = 0
    published: dict = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict:
        return asdict(self)


class _Entry(NamedTuple):
    info: ModelInfo
    builder: Callable[..., nn.Module]
    options: frozenset[str] | None  # keyword options the builder accepts; None when it cannot be told


_REGISTRY: dict[str, _Entry] = {}


def register_model(builder: Callable[..., nn.Module] | None = None, /, **facts):
    """Add a builder to the registry under its function name.

    Used bare (``@register_model``), the facts are the entry of that name in the ``default_cfgs`` table of the
    builder's module. Called with the facts (``@register_model(family=..., variant=..., ...)``, every
    :class:`ModelInfo` field but ``name``), it registers a network defined outside the package.
    """
    if builder is not None:
        return _register(builder, None)
    return lambda fn: _register(fn, facts)


def _register(builder: Callable[..., nn.Module], facts: dict | None) -> Callable[..., nn.Module]:
    name = builder.__name__
    if name in _REGISTRY:
        raise ModelError(f"model {name!r} is registered twice")
    if facts is None:
        table = getattr(sys.modules[builder.__module__], "default_cfgs", {})
        if name not in table:
            raise LookupError(f"{builder.__module__}.default_cfgs has no entry for {name}; add one before its builder")
        facts = table[name]
    info = ModelInfo(name=name, **facts)
    if info.variant not in VARIANTS:
        raise ModelError(f"variant must be one of {VARIANTS}, got {info.variant!r}")
    _REGISTRY[name] = _Entry(info, builder, _options(builder))
    return builder


def _options(builder: Callable[..., nn.Module]) -> frozenset[str] | None:
    """The keyword options ``builder`` takes: its own parameters, and, when it forwards ``**kwargs`` to the class it
    returns (its return annotation), that class's parameters with a default. Parameters without a default (e.g. a
    ResNet's ``layers``) are the architecture, which the builder itself fixes. ``None``: forwards to an unknown."""
    params = inspect.signature(builder).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        return frozenset(names)
    try:
        target = typing.get_type_hints(builder).get("return")
    except NameError:  # an annotation that does not resolve: nothing to check the options against
        target = None
    if not inspect.isclass(target):
        return None
    target_params = inspect.signature(target).parameters.values()
    names |= {p.name for p in target_params if p.default is not p.empty and p.kind is not p.POSITIONAL_ONLY}
    return frozenset(names)


def list_models(family: str | None = None, variant: str | None = None) -> list[str]:
    """Names of the registered networks in natural order (resnet18 < resnet101), optionally filtered."""
    if family is not None and family not in list_families():
        raise ModelError(f"unknown family {family!r}; valid families: {', '.join(list_families())}")
    return sorted(
        (
            name
            for name, (info, _, _) in _REGISTRY.items()
            if (family is None or info.family == family) and (variant is None or info.variant == variant)
        ),
        key=_natural_key,
    )


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_families() -> list[str]:
    """Names of the model families, in the order the chapter introduces them."""
    families = {entry.info.family for entry in _REGISTRY.values()}
    return [f for f in FAMILIES if f in families] + sorted(families - set(FAMILIES))


def _lookup(name: str) -> _Entry:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run `moderncnn models` to see all of them."
        raise ModelError(f"unknown model {name!r}; {hint}")
    return _REGISTRY[name]


def get_model_info(name: str) -> ModelInfo:
    """The registry's facts about ``name``; raises :class:`ModelError` naming the closest names if unknown."""
    return _lookup(name).info


class InputCheck:
    """Forward pre-hook that turns a wrongly shaped input into a clear :class:`ModelError` (a ``ValueError``).

    Without it, a 16 px image in a network that needs 63 px fails deep inside a convolution
    with a message about kernel sizes; this says what the network needs instead.
    """

    def __init__(self, name: str, in_channels: int, min_size: int, exact_size: int | None = None):
        self.name = name
        self.in_channels = in_channels
        self.min_size = min_size
        self.exact_size = exact_size

    def __call__(self, module: nn.Module, args: tuple) -> None:
        x = args[0]
        if x.dim() != 4:
            raise ModelError(
                f"{self.name} expects a batch of images shaped (N, C, H, W), got a tensor of shape {tuple(x.shape)}"
            )
        channels, height, width = x.shape[1:]
        if channels != self.in_channels:
            raise ModelError(
                f"{self.name} was built for {self.in_channels}-channel input, got {channels} channels; "
                f"convert the images or build it with in_channels={channels}"
            )
        if self.exact_size is not None and (height, width) != (self.exact_size, self.exact_size):
            raise ModelError(
                f"{self.name} expects {self.exact_size}x{self.exact_size} inputs (its classifier is sized for them), "
                f"got {height}x{width}; resize the images or build it with input_size={height}"
            )
        if min(height, width) < self.min_size:
            raise ModelError(
                f"{self.name} needs inputs of at least {self.min_size}x{self.min_size}, got {height}x{width}; "
                f"resize the images"
            )


def _check_options(name: str, options: frozenset[str] | None, kwargs: dict) -> None:
    unknown = [key for key in kwargs if options is not None and key not in options]
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], sorted(options), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    plural = "s" if len(unknown) > 1 else ""
    raise ModelError(
        f"{name}: unexpected keyword argument{plural} {', '.join(map(repr, unknown))}; {hint}"
        f"valid options: {', '.join(sorted(options - {'num_classes', 'in_channels'}))}"
    )


def create_model(name: str, num_classes: int = 10, in_channels: int | None = None, **kwargs) -> nn.Module:
    """Build a registered network.

    Args:
        name: registry name (see :func:`list_models`).
        num_classes: number of output logits.
        in_channels: input channels (1 or 3); defaults to the network's own default.
        **kwargs: options of the network's class (e.g. ``width_ratio`` for ``vgg_d2l``, ``preact`` for the CIFAR
            ResNets, ``input_size`` for networks with a fixed-size classifier, ``aux_logits`` for GoogLeNet). What a
            registered network sets itself (``resnet_uva``'s ``shortcut="conv"``) is a default an option overrides,
            as in timm; the architecture (a torchvision ResNet's blocks per stage) is not an option.

    Returns:
        The network, with ``model.info`` (its :class:`ModelInfo`) and an input check that raises a clear
        :class:`ModelError` for a wrong channel count or a too small input.

    Raises:
        ModelError: an unknown name or option, or a value the network cannot be built with. A ``TypeError`` from
            inside a builder is a bug and propagates as it is.
    """
    info, builder, options = _lookup(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"num_classes must be a positive integer, got {num_classes!r}")
    in_channels = info.in_channels if in_channels is None else in_channels
    if in_channels not in (1, 3):
        raise ModelError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels!r}")
    _check_options(name, options, kwargs)
    model = builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    exact = None
    if info.fixed_input_size:
        exact = kwargs.get("input_size", info.input_size)
        info = replace(info, input_size=exact)
    model.info = info
    model.register_forward_pre_hook(InputCheck(name, in_channels, info.min_input_size, exact))
    return model
