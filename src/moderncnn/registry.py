"""The model registry: every network by name, with the facts a user needs before building it.

The public face of :mod:`moderncnn.models._registry`, where the registry lives beside the family modules that fill
it; importing this module imports the networks. See :func:`create_model` and :func:`list_models`.
"""

from __future__ import annotations

from moderncnn.models import (
    FAMILIES,
    VARIANTS,
    InputCheck,
    ModelInfo,
    create_model,
    get_model_info,
    list_families,
    list_models,
    register_model,
)
from moderncnn.models._registry import _lookup  # noqa: F401  (the unchecked builder, for tests of the input check)

__all__ = [
    "FAMILIES",
    "VARIANTS",
    "InputCheck",
    "ModelInfo",
    "create_model",
    "get_model_info",
    "list_families",
    "list_models",
    "register_model",
]
