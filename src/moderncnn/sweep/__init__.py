"""Hyper-parameter sweeps on Optuna: a sweep file, a study in any Optuna storage, trials as run directories.

``load_spec(path)`` reads and checks a sweep file, ``run_sweep(spec, out, workers=N, storage=URL)`` runs or resumes its
study with N local worker processes, ``sweep_report(out)`` reads the trials back and draws Optuna's figures. Names
load on first use: importing the package starts neither Optuna nor torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "SweepSpec": "moderncnn.sweep.spec",
    "load_spec": "moderncnn.sweep.spec",
    "parse_spec": "moderncnn.sweep.spec",
    "run_sweep": "moderncnn.sweep.worker",
    "sweep_report": "moderncnn.sweep.report",
    "best_config": "moderncnn.sweep.report",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'moderncnn.sweep' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
