"""Argument types shared by the subcommands, and the flags generated from :class:`TrainConfig`'s fields."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

import yaml

from moderncnn.constants import CHECKPOINTS
from moderncnn.errors import UsageError

# What a command that uses a trained network takes (every such command takes a published weight too).
RUN_HELP = "a run directory, a .ckpt file, or published weights: weights:NETWORK-DATASET (see `moderncnn weights`)"


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint best|last``: which checkpoint of a run directory a command uses."""
    parser.add_argument("--checkpoint", default="best", choices=CHECKPOINTS, help="which checkpoint (default: best)")


def shape(text: str, dims: int = 4, example: str = "1x3x224x224") -> tuple[int, ...]:
    """``"1x1x224x224"`` → ``(1, 1, 224, 224)``; a one-line error for anything else."""
    try:
        parts = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        parts = ()
    if len(parts) != dims or min(parts) < 1:
        letters = "NxCxHxW" if dims == 4 else "CxHxW"
        raise UsageError(f"--input must be {letters} with positive integers, e.g. {example}; got {text!r}")
    return parts


def count_or_fraction(text: str) -> int | float:
    """``"5000"`` → 5000, ``"0.1"`` → 0.1: a number of items, or a fraction when below 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a fraction, got {text!r}") from None
    return value if 0 < value < 1 else int(value)


def mapping(text: str) -> dict:
    """A YAML mapping given on the command line, e.g. ``'{width_ratio: 4}'``."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping such as '{{width_ratio: 4}}', got {text!r}")
    return value


def add_settings(parser: argparse.ArgumentParser, settings) -> list[str]:
    """One flag per field of the dataclass ``settings`` whose metadata says so, all defaulting to ``None`` (the
    network's own default); help and choices come from the field's metadata. Returns the fields added."""
    hints = typing.get_type_hints(settings)
    added = []
    for f in dataclasses.fields(settings):
        if not f.metadata.get("flag"):
            continue
        kind = hints[f.name]
        options = [o for o in typing.get_args(kind) if o is not type(None)] if _is_union(kind) else [kind]
        kwargs: dict = {"default": None, "help": f.metadata.get("help", "")}
        if f.metadata.get("choices"):
            # Listed in the help, checked by the settings: a wrong value gets their one-line message, not argparse's.
            kwargs["help"] += f": {', '.join(f.metadata['choices'])}"
        if f.metadata.get("const") is not None:
            choices = f.metadata.get("choices")
            kwargs.update(nargs="?", const=f.metadata["const"], metavar="|".join(choices) if choices else "PATH")
        elif options == [bool]:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif set(options) == {bool, str}:  # a switch with auto: `--compile` alone means true
            kwargs.update(nargs="?", const="true", metavar="|".join(f.metadata.get("choices") or ("true", "false")))
        elif typing.get_origin(options[0]) is list:
            kwargs.update(nargs="+", type=typing.get_args(options[0])[0])
        elif options == [dict]:
            kwargs.update(type=mapping, metavar="YAML")
        elif set(options) == {int, float}:
            kwargs["type"] = count_or_fraction
        elif options[0] in (int, float):
            kwargs["type"] = options[0]
        parser.add_argument("--" + f.name.replace("_", "-"), **kwargs)
        added.append(f.name)
    return added


def _is_union(kind) -> bool:
    return isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union
