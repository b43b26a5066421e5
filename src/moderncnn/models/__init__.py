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
from moderncnn.models.pretrained import OPTIONAL_HEADS

__all__ = ["load_torchvision_weights"]


def load_torchvision_weights(model: nn.Module, state_dict: dict, transform_input: bool | None = None) -> nn.Module:
    """Load a torchvision model's ``state_dict()`` into the network of the same name.

    The torchvision-variant networks use torchvision's module names, so this is a strict
    ``load_state_dict``; what it adds is an error that says which tensors did not fit, and torchvision's handling of
    GoogLeNet's and Inception-v3's auxiliary heads: its published weights always carry them, and when the network
    was built without them (our default, as ``aux_logits=False`` in torchvision) their tensors are dropped and
    ``transform_input`` is switched on, as torchvision's builders do for those weights (they were trained on
    ``(x - 0.5) / 0.5`` input, not on ImageNet normalisation).

    Args:
        model: e.g. ``create_model("resnet50", num_classes=1000)``.
        state_dict: e.g. ``torchvision.models.resnet50().state_dict()``.
        transform_input: set ``model.transform_input`` to this; ``None`` (default) follows torchvision's rule:
            on when auxiliary-head weights were dropped, otherwise as the model was built.

    Returns:
        The same ``model``, with the weights loaded.
    """
    own = model.state_dict()
    # Heads torchvision's weights carry and the network was built without (torchvision drops them after loading).
    absent_heads = {head for head in OPTIONAL_HEADS if hasattr(model, head) and getattr(model, head) is None}
    dropped = [k for k in state_dict if k not in own and k.split(".")[0] in absent_heads]
    state_dict = {k: v for k, v in state_dict.items() if k not in dropped}
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
    if transform_input is None and dropped:
        transform_input = True
    if transform_input is not None:
        if not hasattr(model, "transform_input"):
            raise ModelError(f"{type(model).__name__} has no transform_input; only googlenet and inception_v3 do")
        model.transform_input = transform_input
    return model
