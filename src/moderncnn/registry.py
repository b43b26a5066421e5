"""The model registry: every network by name, with the facts a user needs before building it.

The public face of :mod:`moderncnn.models._registry`, where the registry lives beside the family modules that fill
it; importing this module imports the networks. See :func:`create_model` and :func:`list_models`.
``create_model(name, pretrained=DATASET)`` adds our trained weights (:mod:`moderncnn.weights`).
"""

from __future__ import annotations

from torch import nn

import moderncnn.models  # noqa: F401  (the family modules register their networks)
from moderncnn.models._registry import (
    FAMILIES,
    VARIANTS,
    InputCheck,
    ModelInfo,
    _lookup,  # noqa: F401  (the unchecked builder, for tests of the input check)
    get_model_info,
    list_families,
    list_models,
    register_model,
)
from moderncnn.models._registry import create_model as _create_model
from moderncnn.weights import get_weights_info, list_weights

__all__ = [
    "FAMILIES",
    "VARIANTS",
    "InputCheck",
    "ModelInfo",
    "create_model",
    "get_model_info",
    "get_weights_info",
    "list_families",
    "list_models",
    "list_weights",
    "register_model",
]


def create_model(
    name: str, num_classes: int | None = None, in_channels: int | None = None, pretrained: str | None = None, **kwargs
) -> nn.Module:
    """Build a registered network (options: :func:`moderncnn.models._registry.create_model`), optionally trained.

    Args:
        name: registry name (see :func:`list_models`).
        num_classes: number of output logits (default: 10, or the weights' own).
        in_channels: input channels (1 or 3; default: the network's, or the weights' own).
        pretrained: a dataset our weights for ``name`` were trained on (``"cifar10"`` for ``resnet20``; see
            :func:`list_weights`), or ``"imagenet"`` for torchvision's weights of a torchvision network. With another
            ``num_classes`` than the weights', the classifier starts freshly initialised.
        **kwargs: options of the network's class.

    Raises:
        ModelError: an unknown name or option. UsageError: no such weights. CheckpointError: a weight file that fails
            its checksum. OfflineError: a weight that is not here and cannot be downloaded.
    """
    if pretrained is None:
        return _create_model(name, 10 if num_classes is None else num_classes, in_channels, **kwargs)
    if pretrained == "imagenet":
        from moderncnn.models.pretrained import load_pretrained

        net = _create_model(name, 1000 if num_classes is None else num_classes, in_channels, **kwargs)
        load_pretrained(net, name, "imagenet")
        return net
    from moderncnn.weights import create_pretrained

    return create_pretrained(name, pretrained, num_classes, in_channels, **kwargs)
