"""``moderncnn models`` and ``moderncnn summary``: the registry and one network layer by layer."""

from __future__ import annotations

import argparse
import json

from moderncnn.cli.options import shape


def add_parsers(sub) -> None:
    p = sub.add_parser("models", help="list the registered networks with parameters and FLOPs")
    p.add_argument(
        "--family", help="only this family (lenet, alexnet, vgg, nin, googlenet, inception, resnet, densenet)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("summary", help="layer-by-layer output shapes, parameters and FLOPs of one network")
    p.add_argument("model", help="registry name, e.g. alexnet_d2l (see `moderncnn models`)")
    p.add_argument("--input", help="input shape NxCxHxW (default: 1 image at the network's own input size)")
    p.add_argument("--num-classes", type=int, default=10, help="number of classes (default: 10)")
    p.add_argument("--depth", type=int, default=1, help="1 lists the top-level layers as the textbook does (default)")
    p.add_argument("--json", action="store_true", help="print JSON: layers and totals")
    p.set_defaults(func=cmd_summary)


def cmd_models(args: argparse.Namespace) -> int:
    from moderncnn.summarize import model_table
    from moderncnn.weights.table import table as weights_table

    trained: dict[str, list[str]] = {}
    for info in weights_table().values():
        trained.setdefault(info.network, []).append(info.dataset)
    rows = [{**row, "weights": trained.get(row["name"], [])} for row in model_table(family=args.family)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title="moderncnn models",
        caption="params and FLOPs: 10 classes, one image at the default input; weights: datasets of our trained "
        "weights (`moderncnn weights`)",
    )
    for column in ("name", "family", "variant", "input", "min px", "params", "GFLOPs", "weights"):
        table.add_column(column, justify="left" if column in ("name", "family", "variant", "weights") else "right")
    for row in rows:
        table.add_row(
            row["name"],
            row["family"],
            row["variant"],
            "x".join(map(str, row["input_shape"][1:])),
            str(row["min_input_size"]),
            f"{row['params']:,}",
            f"{row['flops'] / 1e9:.3f}",
            ", ".join(row["weights"]),
        )
    Console(width=120).print(table)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from moderncnn.summarize import summarize

    result = summarize(
        args.model, shape(args.input) if args.input else None, num_classes=args.num_classes, depth=args.depth
    )
    if args.json:
        print(json.dumps({"model": args.model, **result.to_dict()}, indent=2))
    else:
        print(result)
    return 0
