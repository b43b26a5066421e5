"""``moderncnn benchmark``: parses, calls :func:`moderncnn.benchmark.benchmark`, prints a table, JSON or CSV.

Imports are lazy (torch loads only when the command runs), so ``moderncnn --help`` stays fast.
"""

from __future__ import annotations

import argparse

from moderncnn.cli.options import shape
from moderncnn.constants import PRECISIONS
from moderncnn.errors import UsageError

CHAPTER_RECIPE = "d2l-ch7"
COLUMNS = (
    "model",
    "mode",
    "input",
    "batch_size",
    "precision",
    "channels_last",
    "images_per_sec",
    "ms_per_step",
    "peak_memory_mib",
    "gflop_per_image",
    "gflops",
    "peak_gflops",
    "peak_fraction",
    "device",
)


def parse_input(text: str) -> tuple[int, int, int]:
    """``"1x28x28"`` → ``(1, 28, 28)`` (channels, height, width), parsed by :func:`~moderncnn.cli.options.shape`;
    argparse reports a bad value in one line."""
    try:
        return shape(text, dims=3, example="1x224x224")
    except UsageError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_parsers(subparsers) -> argparse.ArgumentParser:
    """Add ``benchmark`` to the ``moderncnn`` sub-command parsers."""
    p = subparsers.add_parser(
        "benchmark",
        help="training and inference images/sec, peak memory and GFLOP/s of networks on this machine",
        description="Time each network on random data at its default input: a training step (forward, "
        "cross-entropy, backward, SGD update) and inference, in fp32 and in what --precision auto picks here, "
        "warm-up excluded, the median of several timed passes. GFLOP/s are counted by torch's FLOP "
        "counter (a training image: forward and backward); 'of peak' divides them by this CPU's measured "
        "peak at that precision (the faster of a large matrix product and a wide 3x3 convolution; cached per "
        "machine), or a GPU's data-sheet peak. Without "
        "MODEL: the networks of the d2l-ch7 recipe at its settings (input, batch size).",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help="registry names (default: the d2l-ch7 networks)")
    p.add_argument(
        "--recipe", help=f"time the networks of a recipe at its settings (default without MODEL: {CHAPTER_RECIPE})"
    )
    p.add_argument("--input", type=parse_input, help="CxHxW for every network (default: each network's own)")
    p.add_argument("--batch-size", type=int, help="images per step (default: each network's training batch size)")
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto (default): fp32 beside what auto picks on this machine; or one precision",
    )
    modes = p.add_mutually_exclusive_group()
    modes.add_argument("--train", action="store_true", help="time training steps only")
    modes.add_argument("--infer", action="store_true", help="time inference only")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes per figure, the median is shown (default: 5)")
    p.add_argument("--min-pass-s", type=float, default=0.5, help="seconds each timed pass lasts at least")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON: one object per network, precision, mode")
    output.add_argument("--csv", action="store_true", help="print CSV with the same columns")
    p.set_defaults(func=cmd_benchmark)
    return p


def cases(args: argparse.Namespace) -> list[dict]:
    """What to time: ``{"model", "input", "batch_size", "model_kwargs"}`` per network, from MODEL or a recipe."""
    if args.models and args.recipe:
        raise UsageError("give MODEL names or --recipe, not both")
    if args.models:
        return [
            {"model": m, "input": args.input, "batch_size": args.batch_size, "model_kwargs": None} for m in args.models
        ]
    from moderncnn.registry import get_model_info
    from moderncnn.run.plan import input_size
    from moderncnn.run.recipes import load_recipe

    found = []
    for config in load_recipe(args.recipe or CHAPTER_RECIPE).configs("full"):
        info = get_model_info(config.model)
        size = input_size(config, None)  # the side the network sees, as the run's plan decides it
        found.append(
            {
                "model": config.model,
                "input": args.input or (info.in_channels, size, size),
                "batch_size": config.batch_size if args.batch_size is None else args.batch_size,
                "model_kwargs": config.model_kwargs or None,
            }
        )
    return found


def cmd_benchmark(args: argparse.Namespace) -> int:
    import sys

    from moderncnn.benchmark import benchmark

    modes = ("train",) if args.train else ("infer",) if args.infer else ("train", "infer")
    quiet = args.json or args.csv
    rows = []
    for case in cases(args):
        rows += benchmark(
            [case["model"]],
            input=case["input"],
            batch_size=case["batch_size"],
            precision=args.precision,
            modes=modes,
            device=args.device,
            model_kwargs=case["model_kwargs"],
            repeats=args.repeats,
            min_pass_s=args.min_pass_s,
            log=None if quiet else lambda line: print(line, file=sys.stderr),
        )
    if args.json:
        import json

        print(json.dumps(rows, indent=2))
    elif args.csv:
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        print_table(rows)
    return 0


def print_table(rows: list[dict]) -> None:
    """The rows as a rich table (memory in MiB; the peak fraction only where the GPU's peak is known)."""
    from rich.console import Console
    from rich.table import Table

    device = rows[0]["device"] if rows else ""
    peaks = sorted({f"{r['precision']} {r['peak_gflops']:,.0f}" for r in rows if r["peak_gflops"]})
    caption = "GFLOP/s counted by torch's FLOP counter (training: forward + backward)"
    if peaks:
        caption += f"; peak GFLOP/s here: {', '.join(peaks)}"
    table = Table(title=f"moderncnn benchmark on {device}", caption=caption)
    headers = ["model", "mode", "input", "batch", "precision", "images/s", "ms/step", "peak MiB", "GFLOP/s"]
    show_fraction = any(r["peak_fraction"] is not None for r in rows)
    for header in headers + (["of peak"] if show_fraction else []):
        table.add_column(header, justify="left" if header in ("model", "mode", "precision") else "right")
    for r in rows:
        precision = r["precision"] + (" cl" if r["channels_last"] else "")
        cells = [
            r["model"],
            r["mode"],
            r["input"],
            str(r["batch_size"]),
            precision,
            f"{r['images_per_sec']:,.1f}",
            f"{r['ms_per_step']:.1f}",
            f"{r['peak_memory_mib']:,.0f}",
            f"{r['gflops']:,.1f}",
        ]
        if show_fraction:
            cells.append(f"{r['peak_fraction']:.1%}" if r["peak_fraction"] is not None else "")
        table.add_row(*cells)
    Console(width=140).print(table)
