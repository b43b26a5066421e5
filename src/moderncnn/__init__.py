"""moderncnn: the modern convolutional networks, from LeNet to DenseNet.

>>> import moderncnn as mc
>>> net = mc.create_model("resnet18_d2l", num_classes=10, in_channels=1)
>>> rows = mc.summary(net, (1, 1, 96, 96))
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it. Loaded on first use, so that `import moderncnn` (and the command line's
# `--help`) does not pay for torch, Lightning or plotting until something needs them.
_EXPORTS = {
    "ModelInfo": "moderncnn.registry",
    "create_model": "moderncnn.registry",
    "get_model_info": "moderncnn.registry",
    "list_families": "moderncnn.registry",
    "list_models": "moderncnn.registry",
    "list_weights": "moderncnn.weights",
    "get_weights_info": "moderncnn.weights",
    "count_flops": "moderncnn.summarize",
    "count_parameters": "moderncnn.summarize",
    "summary": "moderncnn.summarize",
    "predict": "moderncnn.deploy.predict",
    "ModernCNNError": "moderncnn.errors",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        # Bound here once loaded: importing a submodule of the same name (``train``, ``summary``) sets the package
        # attribute to the module, which must not shadow the function it exports.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'moderncnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
