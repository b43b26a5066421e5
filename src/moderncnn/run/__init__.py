"""What a run is, apart from how Lightning trains it: its settings, their resolved plan, its checkpoint and the
preprocessing that travels with the trained network.

``config`` holds :class:`TrainConfig` (every setting, its help and validation, the per-network defaults); ``plan``
resolves a validated config once, against the dataset and the hardware, into a frozen :class:`Plan` (the input
size, the normalisation, the speed choices and why); ``speed`` makes the speed choices; ``checkpoint`` reads
checkpoints safely into a :class:`RunInfo` (``load_run``); ``preprocess`` is the one input pipeline of a trained
network. Nothing here imports Lightning: deploy, serve and inspect use a trained run through this package alone.
Names load on first use: reading the settings must not load torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "moderncnn.run.config",
    "config_from": "moderncnn.run.config",
    "default_settings": "moderncnn.run.config",
    "make_config": "moderncnn.run.config",
    "Plan": "moderncnn.run.plan",
    "resolve": "moderncnn.run.plan",
    "resolve_resize": "moderncnn.run.plan",
    "Preprocess": "moderncnn.run.preprocess",
    "RunInfo": "moderncnn.run.checkpoint",
    "LoadedRun": "moderncnn.run.checkpoint",
    "load_checkpoint": "moderncnn.run.checkpoint",
    "load_run": "moderncnn.run.checkpoint",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'moderncnn.run' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
