"""``moderncnn data stats`` and ``moderncnn data preview``: a dataset before any training."""

from __future__ import annotations

import argparse
import json

from moderncnn.cli.options import count_or_fraction
from moderncnn.constants import AUGMENT_PRESETS


def add_parsers(sub) -> None:
    data = sub.add_parser("data", help="datasets: statistics and previews").add_subparsers(
        dest="data_command", required=True, metavar="DATA_COMMAND"
    )
    p = data.add_parser("stats", help="split sizes, classes, class balance, mean and std")
    _add_data_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (splits, classes, mean, std)")
    p.set_defaults(func=cmd_stats)
    p = data.add_parser("preview", help="a labelled grid of images, optionally beside augmented versions")
    _add_data_options(p)
    p.add_argument(
        "--out",
        required=True,
        help="image file to write (.png, .jpg, .pdf, .svg); a folder or a path ending in / gets preview.png inside; "
        "a name without an image extension gets .png",
    )
    p.add_argument("--augment", help=f"show each image beside augmented versions: {', '.join(AUGMENT_PRESETS)}")
    p.add_argument("--resize", type=int, help="resize to this size (the d2l preset needs one)")
    p.add_argument("--split", default="train", help="train, val or test (default: train)")
    p.add_argument("--count", type=int, default=8, help="number of images, 1 to 256 (default: 8)")
    p.set_defaults(func=cmd_preview)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="fashion-mnist, mnist, cifar10, cifar100, digits, imagefolder:PATH or synthetic")
    p.add_argument("--data-dir", help="data root (default: $MODERNCNN_DATA, else ~/.cache/moderncnn/data)")
    p.add_argument(
        "--val-size", type=count_or_fraction, default=0, help="validation images carved from train (count or fraction)"
    )
    p.add_argument("--seed", type=int, default=42, help="seed of the validation split (default: 42)")


def _load(args: argparse.Namespace):
    from moderncnn.data import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir, val_size=args.val_size, seed=args.seed)


def cmd_stats(args: argparse.Namespace) -> int:
    from moderncnn.data.stats import describe

    info = describe(_load(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{info['dataset']}: {info['channels']} channel(s), {info['image_size'] or 'various'} px")
    table.add_column("class")
    for split, entry in info["splits"].items():
        table.add_column(f"{split} ({entry['size']:,})", justify="right")
    for i, name in enumerate(info["classes"]):
        table.add_row(name, *(f"{entry['class_counts'][i]:,}" for entry in info["splits"].values()))
    console = Console(width=100)
    console.print(table)
    console.print(
        "mean " + ", ".join(f"{m:.4f}" for m in info["mean"]) + "   std " + ", ".join(f"{s:.4f}" for s in info["std"])
    )
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from moderncnn.data.preview import preview_grid
    from moderncnn.plotting import check_figure_path

    check_figure_path(args.out, "preview.png")  # before the dataset loads
    out = preview_grid(
        _load(args), args.out, split=args.split, count=args.count, augment=args.augment, resize=args.resize
    )
    print(f"wrote {out}")
    return 0
