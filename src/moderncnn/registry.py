"""The model registry: every network by name, with the facts a user needs before building it.

Family files register their public builders with :func:`register_model`; everything else in the
package (summary, CLI, training engine) reaches a network only through :func:`create_model`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from torch import nn

from moderncnn.errors import ModelError

VARIANTS = ("textbook", "torchvision", "cifar")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one network.

    Attributes:
        name: registry name, e.g. ``"resnet18"``.
        family: ``lenet``, ``alexnet``, ``vgg``, ``nin``, ``googlenet``, ``resnet`` or ``densenet``.
        variant: ``textbook`` (Dive into Deep Learning), ``torchvision`` (the paper as torchvision builds it,
            loads its state dict) or ``cifar`` (small-image networks for 32 px inputs).
        input_size: the side of the square input the network is meant for.
        min_input_size: the smallest side the network accepts.
        in_channels: default number of input channels.
        fixed_input_size: True when the classifier is sized for exactly ``input_size`` (the textbook
            networks that flatten feature maps into a ``Linear``); build with ``input_size=N`` to change it.
        classifier: dotted path of the last layer, the one that produces the class logits.
        source: where the architecture comes from (paper, book section, tutorial).
    """

    name: str
    family: str
    variant: str
    input_size: int
    min_input_size: int
    in_channels: int
    classifier: str
    source: str
    fixed_input_size: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


_REGISTRY: dict[str, tuple[ModelInfo, Callable[..., nn.Module]]] = {}


def register_model(
    *,
    family: str,
    variant: str,
    input_size: int,
    min_input_size: int,
    in_channels: int,
    classifier: str,
    source: str,
    fixed_input_size: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that adds a builder to the registry under the builder's function name."""
    if variant not in VARIANTS:
        raise ModelError(f"variant must be one of {VARIANTS}, got {variant!r}")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ModelError(f"model {name!r} is registered twice")
        info = ModelInfo(
            name=name,
            family=family,
            variant=variant,
            input_size=input_size,
            min_input_size=min_input_size,
            in_channels=in_channels,
            classifier=classifier,
            source=source,
            fixed_input_size=fixed_input_size,
        )
        _REGISTRY[name] = (info, builder)
        return builder

    return decorator


def _ensure_loaded() -> None:
    # The family modules register themselves on import; importing here avoids a cycle with them.
    from moderncnn import models  # noqa: F401


def list_models(family: str | None = None, variant: str | None = None) -> list[str]:
    """Names of the registered networks in natural order (resnet18 < resnet101), optionally filtered."""
    _ensure_loaded()
    if family is not None and family not in list_families():
        raise ModelError(f"unknown family {family!r}; valid families: {', '.join(list_families())}")
    return sorted(
        (
            name
            for name, (info, _) in _REGISTRY.items()
            if (family is None or info.family == family) and (variant is None or info.variant == variant)
        ),
        key=_natural_key,
    )


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_families() -> list[str]:
    """Names of the model families, in the order the chapter introduces them."""
    _ensure_loaded()
    order = ["lenet", "alexnet", "vgg", "nin", "googlenet", "resnet", "densenet"]
    families = {info.family for info, _ in _REGISTRY.values()}
    return [f for f in order if f in families] + sorted(families - set(order))


def _lookup(name: str) -> tuple[ModelInfo, Callable[..., nn.Module]]:
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run `moderncnn models` to see all of them."
        raise ModelError(f"unknown model {name!r}; {hint}")
    return _REGISTRY[name]


def get_model_info(name: str) -> ModelInfo:
    """The registry's facts about ``name``; raises ``ValueError`` naming the closest names if unknown."""
    return _lookup(name)[0]


class InputCheck:
    """Forward pre-hook that turns a wrongly shaped input into a clear ``ValueError``.

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


def create_model(name: str, num_classes: int = 10, in_channels: int | None = None, **kwargs) -> nn.Module:
    """Build a registered network.

    Args:
        name: registry name (see :func:`list_models`).
        num_classes: number of output logits.
        in_channels: input channels (1 or 3); defaults to the network's own default.
        **kwargs: passed to the family builder (e.g. ``width_ratio`` for ``vgg_d2l``, ``preact`` for
            the CIFAR ResNets, ``input_size`` for networks with a fixed-size classifier).

    Returns:
        The network, with ``model.info`` (its :class:`ModelInfo`) and an input check that raises a clear
        ``ValueError`` for a wrong channel count or a too small input.
    """
    info, builder = _lookup(name)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"num_classes must be a positive integer, got {num_classes!r}")
    in_channels = info.in_channels if in_channels is None else in_channels
    if in_channels not in (1, 3):
        raise ModelError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels!r}")
    try:
        model = builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    except TypeError as err:
        raise ModelError(f"{name}: {err}") from None
    exact = None
    if info.fixed_input_size:
        exact = kwargs.get("input_size", info.input_size)
        info = replace(info, input_size=exact)
    model.info = info
    model.register_forward_pre_hook(InputCheck(name, in_channels, info.min_input_size, exact))
    return model
