"""Follow a run's settings through the code with a call tracer: where does the ``TrainConfig`` go?

Traces ``lr_find`` on a tiny synthetic dataset (``sys.setprofile``: every Python call) and records each call of a
moderncnn function that receives a ``TrainConfig`` as an argument, or an object that keeps one in an attribute to
read settings from (``self.cfg`` of a data module or a LightningModule). A *visit* is such a call,
counted once per distinct function; a *return* is a call in a module the config had left for another one earlier
(consecutive calls in one module count once). Usage: ``python benchmarks/config_visits.py [--list]``.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import tempfile


def _holds(value, kind) -> bool:
    """``value`` is a config, or an object that keeps one in an attribute (``self.cfg``) to read settings from."""
    if isinstance(value, kind):
        return True
    attributes = getattr(value, "__dict__", None)
    return isinstance(attributes, dict) and any(isinstance(v, kind) for v in list(attributes.values()))


def trace_lr_find(narrow: bool = False) -> list[tuple[str, str]]:
    """``(module, function)`` of every call that received a ``TrainConfig``, in order (``narrow``: as an argument
    itself, not kept in an attribute of one)."""
    try:
        from moderncnn.run.config import TrainConfig, make_config
    except ImportError:  # before the run package (the code this was first measured on)
        from moderncnn.engine.config import TrainConfig, make_config
    from moderncnn.engine.lr_find import lr_find

    config = make_config(
        "lenet_bn",
        dataset="synthetic:image_size=28,channels=1,num_train=64,num_test=16",
        batch_size=16,
        epochs=1,
        accelerator="cpu",
        precision="32",
    )
    calls: list[tuple[str, str]] = []

    def held(value) -> bool:
        return isinstance(value, TrainConfig) if narrow else _holds(value, TrainConfig)

    def profile(frame, event, arg):
        if event != "call":
            return
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("moderncnn"):
            return
        code = frame.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if any(held(frame.f_locals.get(n)) for n in names):
            calls.append((module, code.co_qualname))

    with tempfile.TemporaryDirectory() as out:
        sys.setprofile(profile)
        try:
            lr_find(config, steps=3, out=os.path.join(out, "lr.png"), quiet=True)
        finally:
            sys.setprofile(None)
    return calls


def summarise(calls: list[tuple[str, str]]) -> dict:
    places = list(dict.fromkeys(calls))
    modules = list(dict.fromkeys(m for m, _ in calls))
    sequence = [m for i, (m, _) in enumerate(calls) if i == 0 or calls[i - 1][0] != m]
    returns = sum(1 for i, m in enumerate(sequence) if m in sequence[:i])
    return {"calls": len(calls), "visits": len(places), "modules": len(modules), "returns": returns}


def main() -> None:
    parser = argparse.ArgumentParser(description=inspect.getdoc(sys.modules[__name__]).splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print each call")
    parser.add_argument("--narrow", action="store_true", help="count only calls with a TrainConfig as an argument")
    args = parser.parse_args()
    calls = trace_lr_find(args.narrow)
    if args.list:
        for module, function in calls:
            print(f"{module}.{function}")
    print(summarise(calls))


if __name__ == "__main__":
    main()
