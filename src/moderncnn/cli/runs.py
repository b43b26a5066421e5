"""``moderncnn evaluate``, ``reproduce`` and ``compare``: runs measured, reproduced and set side by side."""

from __future__ import annotations

import argparse
import json
import sys

from moderncnn.cli.options import add_checkpoint
from moderncnn.constants import BUDGETS


def add_parsers(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix of a trained run")
    p.add_argument("run", help="a run directory, or published weights: weights:NETWORK-DATASET")
    p.add_argument("--dataset", help="evaluate on another dataset with the same classes (default: the run's)")
    p.add_argument("--data-dir", help="data root")
    p.add_argument("--split", default="test", help="test or val (default: test)")
    add_checkpoint(p)
    p.add_argument("--out", help="confusion matrix PNG (default: RUN/confusion-SPLIT.png)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        help="flip test-time augmentation: average each image's logits with its mirror's (default: as the run tested)",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "reproduce",
        help="train every network of a published experiment and compare with its figures",
        description="Train the networks of a recipe (d2l-ch7, uva-tutorial5, or a recipe file) and write a "
        "comparison with the published figures. Running the same command again continues where it stopped.",
    )
    p.add_argument("recipe", nargs="?", help="a bundled recipe's name or a recipe file (see --list)")
    p.add_argument("--list", action="store_true", help="list the bundled recipes")
    p.add_argument(
        "--budget",
        default="full",
        choices=BUDGETS,
        help="full: the published settings (default; hours on a GPU for the whole recipe); quick: fewer epochs "
        "at native resolution; fast: the same networks at native resolution with a modern recipe, aiming at the "
        "published accuracy in the least time; smoke: a few batches per network",
    )
    p.add_argument("--out", help="folder for the runs and the report (default: runs/reproduce/RECIPE-BUDGET)")
    p.add_argument("--only", help="comma-separated networks of the recipe to train")
    p.add_argument("--data-dir", help="data root (default: $MODERNCNN_DATA, else ~/.cache/moderncnn/data)")
    p.add_argument("--accelerator", help="cpu, gpu or auto (default: auto)")
    p.add_argument("--devices", type=int, help="devices (processes) per run")
    p.add_argument("--seed", type=int, help="seed of every run (default: the recipe's); repeat with others")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("compare", help="finished runs side by side: table (markdown, CSV) and plots")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--out", default="runs/comparison", help="folder for the report (default: runs/comparison)")
    p.set_defaults(func=cmd_compare)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from moderncnn.engine.evaluate import evaluate
    from moderncnn.plotting import check_figure_path

    if args.out:
        check_figure_path(args.out, "confusion.png")  # before the evaluation, not after it
    result = evaluate(
        args.run,
        dataset=args.dataset,
        split=args.split,
        data_dir=args.data_dir,
        checkpoint=args.checkpoint,
        tta=args.tta,
    )
    weights = str(args.run).startswith("weights:")
    tested = str(args.run) if weights else f"{args.checkpoint}.ckpt"  # a published weight has one checkpoint
    title = f"{args.run} ({args.split})" if weights else f"{args.run} ({args.split}, {tested})"
    # The figures first, the file after: a location that cannot be written loses no result.
    if args.json:
        out = result.confusion_path(args.out)
        print(json.dumps({**result.to_dict(), "confusion_png": str(out)}, indent=2))
        result.save_confusion(out, title)
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=100)
    with_tta = f", with {result.views} TTA" if result.tta else ""
    console.print(f"{args.split} accuracy {result.accuracy:.4f} on {result.images:,} images ({tested}{with_tta})")
    table = Table()
    table.add_column("class")
    table.add_column("accuracy", justify="right")
    for name, acc in zip(result.classes, result.per_class, strict=True):
        table.add_row(name, f"{acc:.3f}")
    console.print(table)
    console.print(
        "most confused (true -> predicted: count): " + "; ".join(f"{a} -> {b}: {n}" for a, b, n in result.worst_pairs)
    )
    console.print(f"confusion matrix: {result.save_confusion(args.out, title)}")
    return 0


def _print_comparison(comparison) -> None:
    print(comparison.markdown, end="")
    print("wrote " + ", ".join(str(path) for path in comparison.files.values()))


def cmd_reproduce(args: argparse.Namespace) -> int:
    from moderncnn.reproduce import list_recipes, load_recipe, reproduce

    if args.list or not args.recipe:
        for recipe in list_recipes():
            networks = ", ".join(n.model for n in recipe.networks)
            print(f"{recipe.name}: {recipe.title}\n  {recipe.dataset}; budgets {', '.join(recipe.budgets)}; {networks}")
        if not args.list:
            print("\nrun one with: moderncnn reproduce RECIPE [--budget full|quick|fast|smoke]")
        return 0
    recipe = load_recipe(args.recipe)
    only = args.only.split(",") if args.only else None
    overrides = {"data_dir": args.data_dir, "accelerator": args.accelerator, "devices": args.devices, "seed": args.seed}
    try:
        comparison = reproduce(recipe, args.budget, out=args.out, only=only, overrides=overrides, quiet=args.quiet)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue where it stopped", file=sys.stderr)
        return 130
    if comparison is None:  # a non-zero rank of a multi-process run
        return 0
    _print_comparison(comparison)
    return 1 if comparison.failures else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from moderncnn.reports.compare import compare

    _print_comparison(compare(args.runs, args.out))
    return 0
