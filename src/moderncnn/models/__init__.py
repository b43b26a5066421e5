"""The networks, one module per family, and the registry that names them.

Importing this package imports every family module, and each registers its networks; the registry itself lives in
``_registry.py``, which imports nothing of the package, so a family module can import it without a cycle. Its public
face is :mod:`moderncnn.registry` (``create_model``, ``list_models``, ``get_model_info``, ``ModelInfo``): one place
that names them; this package adds :func:`load_torchvision_weights`.
"""

from __future__ import annotations

from torch import nn

from moderncnn.errors import ModelError
from moderncnn.models import (  # noqa: F401  (imported for their registrations)
    airbench,
    alexnet,
    densenet,
    googlenet,
    inception,
    inception_bn,
    lenet,
    nin,
    resnet,
    resnet_cifar,
    vgg,
)

__all__ = ["load_torchvision_weights"]


def load_torchvision_weights(model: nn.Module, state_dict: dict) -> nn.Module:
    """Load a torchvision model's ``state_dict()`` into the network of the same name.

    The torchvision-variant networks use torchvision's module names, so this is a strict
    ``load_state_dict``; what it adds is an error that says which tensors did not fit.

    Args:
        model: e.g. ``create_model("resnet50", num_classes=1000)``.
        state_dict: e.g. ``torchvision.models.resnet50().state_dict()``.

    Returns:
        The same ``model``, with the weights loaded.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [k for k in own if k in state_dict and own[k].shape != state_dict[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if keys:
                parts.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})")
        name = getattr(getattr(model, "info", None), "name", type(model).__name__)
        raise ModelError(f"weights do not fit {name}: {'; '.join(parts)}; are they for this network and class count?")
    model.load_state_dict(state_dict, strict=True)
    return model
