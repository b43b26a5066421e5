"""``moderncnn weights``: the published trained weights, and each one's model card."""

from __future__ import annotations

import argparse
import json


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "weights",
        help="our trained weights: list them, or print one's model card",
        description="Without NAME, list every published weight: network, dataset, test accuracy (and with its "
        "test-time augmentation), recipe, epochs, training time and hardware, date, file size and sha256. "
        "With NAME, print its model card. "
        "Use one anywhere a command takes a RUN: `moderncnn predict weights:NAME image.png`.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="a weight's name, e.g. resnet20-cifar10")
    p.add_argument("--json", action="store_true", help="print the table's entries as JSON")
    p.set_defaults(func=cmd_weights)


def cmd_weights(args: argparse.Namespace) -> int:
    from moderncnn.weights.table import get_weights_info, table

    if args.name:
        info = get_weights_info(args.name)
        if args.json:
            print(json.dumps(info.to_dict(), indent=2))
        elif info.card.is_file():
            print(info.card.read_text(), end="")
        else:
            print(f"{info.name}: no model card in this installation ({info.card} is missing)")
        return 0
    entries = list(table().values())
    if args.json:
        print(json.dumps([info.to_dict() for info in entries], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    listing = Table(title="moderncnn weights", caption="use one as a RUN: moderncnn predict weights:NAME IMAGE")
    for column in ("name", "test acc", "TTA", "recipe", "epochs", "train time", "hardware", "date", "size", "sha256"):
        listing.add_column(column, justify="right" if column in ("test acc", "TTA", "epochs", "size") else "left")
    for info in entries:
        listing.add_row(
            info.name,
            _fraction(info.test_acc),
            _fraction(info.test_acc_tta),
            info.recipe,
            str(info.epochs or ""),
            _duration(info.train_seconds),
            info.hardware.split(";")[0],
            info.date,
            f"{info.size / 1e6:.2f} MB" + ("" if info.bundled else " (download)"),
            info.sha256[:12],
        )
    Console(width=160).print(listing)
    if not entries:
        print("no weights are published in this installation")
    return 0


def _fraction(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
