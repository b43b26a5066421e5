"""The ``moderncnn`` command: one subcommand per module of this package, each an ``add_parser`` beside its handler.

Handlers only parse, call the library and print; anything the command line does, the Python API does. Nothing
heavy is imported until a command runs, so ``moderncnn --help`` and every subcommand's ``--help`` answer at once.
A :class:`~moderncnn.errors.ModernCNNError` becomes one line on stderr and exit code 2; any other exception is a bug
and keeps its traceback. ``MODERNCNN_DEBUG=1`` shows the traceback of user errors too.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from moderncnn.cli import benchmark, data, demo, deploy, inspect, models, runs, serve, sweep, train, weights
from moderncnn.errors import ModernCNNError

# In the order `moderncnn --help` lists them: try, learn, train, compare, use.
COMMANDS = (demo, models, weights, data, train, runs, sweep, deploy, inspect, serve, benchmark)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moderncnn",
        description="The modern convolutional networks, LeNet to DenseNet: inspect, train, compare, export.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ModernCNNError as err:
        if os.environ.get("MODERNCNN_DEBUG") == "1":
            raise
        print(f"moderncnn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of our output went away (`moderncnn predict ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
