"""The ``moderncnn`` command: parses arguments, calls the library, prints. No logic of its own."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from moderncnn import registry
from moderncnn.summary import model_table, summary


class UsageError(ValueError):
    """A command-line value that cannot be used; reported in one line with exit code 2."""


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x1x224x224"`` → ``(1, 1, 224, 224)``."""
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise UsageError(f"--input must be NxCxHxW with positive integers, e.g. 1x3x224x224; got {text!r}")
    return shape


def cmd_demo(args: argparse.Namespace) -> int:
    from moderncnn.demo import run_demo

    run_demo(
        args.dataset, run_dir=args.run_dir, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir, quiet=args.quiet
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    rows = model_table(family=args.family)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="moderncnn models", caption="params and FLOPs: 10 classes, one image at the default input")
    for column in ("name", "family", "variant", "input", "min px", "params", "GFLOPs"):
        table.add_column(column, justify="left" if column in ("name", "family", "variant") else "right")
    for row in rows:
        table.add_row(
            row["name"],
            row["family"],
            row["variant"],
            "x".join(map(str, row["input_shape"][1:])),
            str(row["min_input_size"]),
            f"{row['params']:,}",
            f"{row['flops'] / 1e9:.3f}",
        )
    Console(width=100).print(table)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    info = registry.get_model_info(args.model)
    kwargs = {}
    shape = parse_shape(args.input) if args.input else None
    in_channels = shape[1] if shape else info.in_channels
    if shape and info.fixed_input_size and shape[2] == shape[3]:
        kwargs["input_size"] = shape[2]  # size the classifier for the requested input, as the book's lazy layers do
    model = registry.create_model(args.model, num_classes=args.num_classes, in_channels=in_channels, **kwargs)
    shape = shape or (1, in_channels, info.input_size, info.input_size)
    result = summary(model, shape, depth=args.depth)
    if args.json:
        print(json.dumps({"model": args.model, **result.to_dict()}, indent=2))
    else:
        print(result)
    return 0


def _load(args: argparse.Namespace):
    from moderncnn.data import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir, val_size=args.val_size, seed=args.seed)


def cmd_data_stats(args: argparse.Namespace) -> int:
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


def cmd_train(args: argparse.Namespace) -> int:
    from moderncnn.engine import TrainConfig, make_config, train

    if args.resume:
        if args.model or args.config:
            raise UsageError("--resume continues a run with its own config.yaml; give no MODEL or --config with it")
        result = train(None, resume=args.resume, quiet=args.quiet)
    else:
        overrides = {
            name: getattr(args, name)
            for name in [*TRAIN_OPTIONS, "compile", "channels_last", "pretrained", "freeze_backbone"]
        }
        if args.config:
            config = TrainConfig.load(args.config)
            values = {**config.to_dict(), **{k: v for k, v in overrides.items() if v is not None}}
            if args.model:
                values["model"] = args.model
            config = TrainConfig.from_dict(values).validate()
        elif args.model:
            config = make_config(args.model, **overrides)
        else:
            raise UsageError("name a MODEL (see `moderncnn models`), or give --config FILE or --resume RUN")
        result = train(config, quiet=args.quiet)
    if result.rank == 0:  # under DDP every process returns here; one report is enough
        print(result)
        print(f"run directory: {result.run_dir}")
    return 0


# `moderncnn train` options that map one-to-one onto TrainConfig fields (default None: the network's default).
TRAIN_OPTIONS = {
    "dataset": (str, "fashion-mnist, mnist, cifar10, cifar100, digits, imagefolder:PATH or synthetic"),
    "data_dir": (str, "data root (default: $MODERNCNN_DATA, else ~/.cache/moderncnn/data)"),
    "epochs": (int, "passes over the training split"),
    "batch_size": (int, "images per step (per device)"),
    "lr": (float, "learning rate"),
    "optimizer": (str, "sgd, adam or adamw"),
    "momentum": (float, "SGD momentum"),
    "weight_decay": (float, "L2 weight decay"),
    "schedule": (str, "none, multistep, cosine or onecycle"),
    "warmup_epochs": (int, "linear learning-rate warm-up epochs"),
    "label_smoothing": (float, "cross-entropy label smoothing"),
    "init": (str, "default, xavier or kaiming weight initialisation"),
    "augment": (str, "none, d2l, cifar or uva"),
    "resize": (int, "resize images to this size (the d2l preset uses the network's input)"),
    "val_size": (None, "validation images carved from train (count or fraction; 0: validate on test)"),
    "precision": (str, "32, bf16-mixed or 16-mixed"),
    "accelerator": (str, "cpu, gpu or auto"),
    "devices": (int, "devices (processes) per node"),
    "strategy": (str, "Lightning strategy, e.g. ddp"),
    "num_nodes": (int, "nodes"),
    "seed": (int, "seed of initialisation, data order and augmentation"),
    "limit_batches": (float, "batches per epoch (count, or fraction if < 1), for quick checks"),
    "num_workers": (int, "DataLoader workers for image folders"),
    "run_dir": (str, "run directory (default: runs/<model>-<dataset>-<time>)"),
}


def cmd_data_preview(args: argparse.Namespace) -> int:
    from moderncnn.data.preview import preview_grid

    out = preview_grid(
        _load(args), args.out, split=args.split, count=args.count, augment=args.augment, resize=args.resize
    )
    print(f"wrote {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from moderncnn.engine.evaluate import evaluate
    from moderncnn.reports.confusion import plot_confusion

    result = evaluate(
        args.run, dataset=args.dataset, split=args.split, data_dir=args.data_dir, checkpoint=args.checkpoint
    )
    out = Path(args.out) if args.out else Path(args.run) / f"confusion-{args.split}.png"
    plot_confusion(result.confusion, result.classes, out, title=f"{args.run} ({args.split}, {args.checkpoint}.ckpt)")
    if args.json:
        print(json.dumps({**result.to_dict(), "confusion_png": str(out)}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(width=100)
    console.print(f"{args.split} accuracy {result.accuracy:.4f} on {result.images:,} images ({args.checkpoint}.ckpt)")
    table = Table()
    table.add_column("class")
    table.add_column("accuracy", justify="right")
    for name, acc in zip(result.classes, result.per_class, strict=True):
        table.add_row(name, f"{acc:.3f}")
    console.print(table)
    console.print(
        "most confused (true -> predicted: count): " + "; ".join(f"{a} -> {b}: {n}" for a, b, n in result.worst_pairs)
    )
    console.print(f"confusion matrix: {out}")
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
            print("\nrun one with: moderncnn reproduce RECIPE [--budget full|quick|smoke]")
        return 0
    recipe = load_recipe(args.recipe)
    only = args.only.split(",") if args.only else None
    overrides = {"data_dir": args.data_dir, "accelerator": args.accelerator, "devices": args.devices}
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


def cmd_predict(args: argparse.Namespace) -> int:
    from moderncnn.deploy.predict import plot_predictions, predict

    result = predict(
        args.run,
        args.images,
        top_k=args.top_k,
        batch_size=args.batch_size,
        device=args.device,
        checkpoint=args.checkpoint,
    )
    for failure in result.failures:
        print(f"moderncnn predict: skipped {failure.path}: {failure.reason}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "predictions": [p.to_dict() for p in result.predictions],
                    "failures": [f.to_dict() for f in result.failures],
                },
                indent=2,
            )
        )
    elif args.csv:
        import csv

        k = max((len(p.classes) for p in result.predictions), default=0)
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["path"] + [f"{column}_{i}" for i in range(1, k + 1) for column in ("class", "prob")])
        for p in result.predictions:
            writer.writerow([p.path] + [v for pair in zip(p.classes, p.probs, strict=True) for v in pair])
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table()
        table.add_column("image", overflow="fold")  # whole paths, wrapped: they are what the user copies
        table.add_column("class")
        table.add_column("prob", justify="right")
        table.add_column("next")
        for p in result.predictions:
            rest = ", ".join(f"{c} {v:.3f}" for c, v in zip(p.classes[1:], p.probs[1:], strict=True))
            table.add_row(p.path, p.label, f"{p.prob:.3f}", rest)
        Console(width=120).print(table)
    if args.show and result.predictions:
        out = plot_predictions(result.predictions, args.show)
        # stdout carries only the JSON/CSV when one is asked for.
        print(f"wrote {out}", file=sys.stderr if args.json or args.csv else sys.stdout)
    return 1 if result.failures else 0


def cmd_export(args: argparse.Namespace) -> int:
    from moderncnn.deploy.export import export

    result = export(
        args.run,
        args.format,
        args.out,
        checkpoint=args.checkpoint,
        opset=args.opset,
        name=args.name,
        max_batch_size=args.max_batch_size,
        tolerance=args.tolerance,
    )
    print(result)
    print(f"preprocessing and class names: {result.metadata}")
    return 0


def _defaults_epilog() -> str:
    from moderncnn.engine.config import _BY_MODEL, _BY_VARIANT

    lines = ["defaults by variant (then by network):"]
    for variant, values in _BY_VARIANT.items():
        lines.append(f"  {variant}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    for model, values in _BY_MODEL.items():
        lines.append(f"  {model}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    lines.append("  otherwise: " + ", ".join(f"{f.name}={f.default}" for f in _plain_fields()))
    return "\n".join(lines)


def _plain_fields():
    import dataclasses

    from moderncnn.engine.config import TrainConfig

    return [f for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING and f.name != "run_dir"]


def _val_size(text: str) -> int | float:
    value = float(text)
    return value if 0 < value < 1 else int(value)


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="fashion-mnist, mnist, cifar10, cifar100, digits, imagefolder:PATH or synthetic")
    p.add_argument("--data-dir", help="data root (default: $MODERNCNN_DATA, else ~/.cache/moderncnn/data)")
    p.add_argument(
        "--val-size", type=_val_size, default=0, help="validation images carved from train (count or fraction)"
    )
    p.add_argument("--seed", type=int, default=42, help="seed of the validation split (default: 42)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moderncnn",
        description="The modern convolutional networks, LeNet to DenseNet: inspect, train, compare, export.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="offline: train LeNet-BN on the bundled digits, evaluate it, and show what to run next",
        description="Train the textbook's BatchNorm LeNet on scikit-learn's bundled handwritten digits (no download; "
        "under a minute on the CPU), write a run directory, evaluate it on the test split (confusion matrix) and "
        "print the next commands. --dataset fashion-mnist or mnist does the same on that dataset (downloaded on "
        "first use).",
    )
    p.add_argument("--dataset", default="digits", help="digits (default), fashion-mnist or mnist")
    p.add_argument("--data-dir", help="data root for fashion-mnist/mnist (default: $MODERNCNN_DATA, else ~/.cache/...)")
    p.add_argument("--run-dir", help="run directory (default: runs/lenet_bn-<dataset>-<time>)")
    p.add_argument("--epochs", type=int, help="passes over the training split (default: 15 on digits, 5 otherwise)")
    p.add_argument("--seed", type=int, default=42, help="seed of the validation split, initialisation and data order")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("models", help="list the registered networks with parameters and FLOPs")
    p.add_argument("--family", help="only this family (lenet, alexnet, vgg, nin, googlenet, resnet, densenet)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("summary", help="layer-by-layer output shapes, parameters and FLOPs of one network")
    p.add_argument("model", help="registry name, e.g. alexnet_d2l (see `moderncnn models`)")
    p.add_argument("--input", help="input shape NxCxHxW (default: 1 image at the network's own input size)")
    p.add_argument("--num-classes", type=int, default=10, help="number of classes (default: 10)")
    p.add_argument("--depth", type=int, default=1, help="1 lists the top-level layers as the textbook does (default)")
    p.add_argument("--json", action="store_true", help="print JSON: layers and totals")
    p.set_defaults(func=cmd_summary)

    data = sub.add_parser("data", help="datasets: statistics and previews").add_subparsers(
        dest="data_command", required=True, metavar="DATA_COMMAND"
    )
    p = data.add_parser("stats", help="split sizes, classes, class balance, mean and std")
    _add_data_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (splits, classes, mean, std)")
    p.set_defaults(func=cmd_data_stats)
    p = data.add_parser("preview", help="a labelled grid of images, optionally beside augmented versions")
    _add_data_options(p)
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--augment", help="show each image beside augmented versions: none, d2l, cifar or uva")
    p.add_argument("--resize", type=int, help="resize to this size (the d2l preset needs one)")
    p.add_argument("--split", default="train", help="train, val or test (default: train)")
    p.add_argument("--count", type=int, default=8, help="number of images (default: 8)")
    p.set_defaults(func=cmd_data_preview)

    p = sub.add_parser(
        "train",
        help="train a network and write a run directory",
        description="Train a network. Options left out take the network's defaults, listed below.",
        epilog=_defaults_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="registry name (see `moderncnn models`)")
    for name, (kind, text) in TRAIN_OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=_val_size if kind is None else kind, default=None, help=text)
    p.add_argument("--compile", action="store_const", const=True, default=None, help="torch.compile the network")
    p.add_argument("--channels-last", action="store_const", const=True, default=None, help="channels-last memory")
    p.add_argument(
        "--pretrained",
        nargs="?",
        const="imagenet",
        metavar="PATH",
        help="start from torchvision's ImageNet weights (torchvision networks; downloaded once), or from a .pth "
        "state dict at PATH; a classifier for another class count starts fresh, 1-channel input sums the first "
        "convolution over RGB",
    )
    p.add_argument(
        "--freeze-backbone", action="store_const", const=True, default=None, help="train only the classifier"
    )
    p.add_argument("--config", help="a config.yaml written by an earlier run (options given here override it)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN from its checkpoints/last.ckpt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix of a trained run")
    p.add_argument("run", help="a run directory")
    p.add_argument("--dataset", help="evaluate on another dataset with the same classes (default: the run's)")
    p.add_argument("--data-dir", help="data root")
    p.add_argument("--split", default="test", help="test or val (default: test)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint (default: best)")
    p.add_argument("--out", help="confusion matrix PNG (default: RUN/confusion-SPLIT.png)")
    p.add_argument("--json", action="store_true", help="print JSON")
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
        choices=["full", "quick", "smoke"],
        help="full: the published settings (default; hours on a GPU for the whole recipe); quick: fewer epochs "
        "at native resolution; smoke: a few batches per network",
    )
    p.add_argument("--out", help="folder for the runs and the report (default: runs/reproduce/RECIPE-BUDGET)")
    p.add_argument("--only", help="comma-separated networks of the recipe to train")
    p.add_argument("--data-dir", help="data root (default: $MODERNCNN_DATA, else ~/.cache/moderncnn/data)")
    p.add_argument("--accelerator", help="cpu, gpu or auto (default: auto)")
    p.add_argument("--devices", type=int, help="devices (processes) per run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("compare", help="finished runs side by side: table (markdown, CSV) and plots")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--out", default="runs/comparison", help="folder for the report (default: runs/comparison)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser(
        "predict",
        help="classify image files with a trained run",
        description="Classify image files with a trained run, preprocessed as in its evaluation. Exit code 0 when "
        "every image was predicted, 1 when some could not be read (they are named on stderr), 2 for a usage error.",
    )
    p.add_argument("run", metavar="RUN_OR_CKPT", help="a run directory or a .ckpt file")
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders (recursively)")
    p.add_argument("--top-k", type=int, default=5, help="classes shown per image (default: 5)")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON: predictions and failures")
    output.add_argument("--csv", action="store_true", help="print CSV: path, class_1, prob_1, class_2, ...")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint (default: best)")
    p.add_argument("--show", metavar="GRID.PNG", help="also write a labelled grid of the images (first 64)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "export",
        help="export a trained run to ONNX, torch.export, TorchScript or a Triton model repository",
        description="Export a trained run's network, then load it back with its runtime and compare it with the "
        "network on random batches of 1 and 3 images (fails above --tolerance). The preprocessing and class names are "
        "written beside it (OUT.json; preprocessing.json in a Triton model folder).",
    )
    p.add_argument("run", metavar="RUN_OR_CKPT", help="a run directory or a .ckpt file")
    p.add_argument(
        "--format",
        required=True,
        help="onnx (verified with onnxruntime); pt2 (torch.export); torchscript (deprecated upstream in favour of "
        "torch.export); triton (a Triton model repository serving the ONNX model with onnxruntime)",
    )
    p.add_argument(
        "--out", help="file to write; for triton the repository folder (default: RUN/export/MODEL.EXT, RUN/triton)"
    )
    p.add_argument("--checkpoint", default="best", choices=["best", "last"], help="which checkpoint (default: best)")
    p.add_argument("--opset", type=int, help="ONNX operator set (default: the exporter's)")
    p.add_argument("--name", help="the model's name in a Triton repository (default: the network's name)")
    p.add_argument("--max-batch-size", type=int, default=64, help="Triton's max_batch_size (default: 64)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="largest accepted max abs difference from the network's logits (default: 1e-4)",
    )
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from moderncnn.engine.module import NonFiniteLossError

    try:
        return args.func(args)
    except (ValueError, NonFiniteLossError) as err:
        # Our own errors (unknown model, bad shape, ...) are ValueErrors with a message meant for the user.
        print(f"moderncnn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader of our output went away (`moderncnn predict ... | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
