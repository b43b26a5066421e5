"""Training: a Lightning module around any registered network, a data module, and ``train(config)``.

Knows nothing of a particular family: networks come from the registry by name, data from ``moderncnn.data``, and
what a run is (its settings, their plan, its checkpoints) from :mod:`moderncnn.run`; the settings and ``load_run``
are also offered here, where the README first shows them. Names load on first use: reading the settings must not
start Lightning.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "moderncnn.run.config",
    "config_from": "moderncnn.run.config",
    "default_settings": "moderncnn.run.config",
    "make_config": "moderncnn.run.config",
    "RunResult": "moderncnn.engine.training",
    "train": "moderncnn.engine.training",
    "load_checkpoint": "moderncnn.run.checkpoint",
    "load_run": "moderncnn.run.checkpoint",
    "RunInfo": "moderncnn.run.checkpoint",
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
