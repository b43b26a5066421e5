"""Training: a Lightning module around any registered network, a data module, and ``train(config)``.

Knows nothing of a particular family: networks come from the registry by name, data from ``moderncnn.data``.
Names load on first use: reading the settings (``engine.config``) must not start Lightning.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "moderncnn.engine.config",
    "config_from": "moderncnn.engine.config",
    "default_settings": "moderncnn.engine.config",
    "make_config": "moderncnn.engine.config",
    "RunResult": "moderncnn.engine.training",
    "train": "moderncnn.engine.training",
    "load_checkpoint": "moderncnn.engine.checkpoint",
    "load_run": "moderncnn.engine.checkpoint",
    "RunInfo": "moderncnn.engine.checkpoint",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        # Bound here once loaded: importing a submodule of the same name (``train``, ``summary``) sets the package
        # attribute to the module, which must not shadow the function it exports.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'moderncnn.engine' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
