"""``moderncnn predict`` and ``moderncnn export``: use a trained run."""

from __future__ import annotations

import argparse
import json
import sys

from moderncnn.cli.options import RUN_HELP, add_checkpoint


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="classify image files with a trained run",
        description="Classify image files with a trained run, preprocessed as in its evaluation. Exit code 0 when "
        "every image was predicted, 1 when some could not be read (they are named on stderr), 2 for a usage error.",
    )
    p.add_argument("run", metavar="RUN_OR_CKPT", help=RUN_HELP)
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders (recursively)")
    p.add_argument("--top-k", type=int, default=5, help="classes shown per image (default: 5)")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON: predictions and failures")
    output.add_argument("--csv", action="store_true", help="print CSV: path, class_1, prob_1, class_2, ...")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    add_checkpoint(p)
    p.add_argument(
        "--show",
        metavar="GRID.PNG",
        help="also write a labelled grid of the first 64 images (thumbnails); a folder gets predictions.png",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        help="largest image accepted, in pixels (default: PIL's decompression-bomb level, or $MODERNCNN_MAX_PIXELS)",
    )
    p.add_argument(
        "--explain",
        metavar="DIR",
        help="also write a Grad-CAM overlay per predicted image into DIR (see `moderncnn explain` for other methods)",
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "export",
        help="export a trained run to ONNX, torch.export, TorchScript or a Triton model repository",
        description="Export a trained run's network, then load it back with its runtime and compare it with the "
        "network on random batches of 1 and 3 images (fails above --tolerance). The preprocessing and class names are "
        "written beside it (OUT.json; preprocessing.json in a Triton model folder).",
    )
    p.add_argument("run", metavar="RUN_OR_CKPT", help=RUN_HELP)
    p.add_argument(
        "--format",
        required=True,
        help="onnx (verified with onnxruntime); pt2 (torch.export); torchscript (deprecated upstream in favour of "
        "torch.export); triton (a Triton model repository serving the ONNX model with onnxruntime)",
    )
    p.add_argument(
        "--out", help="file to write; for triton the repository folder (default: RUN/export/MODEL.EXT, RUN/triton)"
    )
    add_checkpoint(p)
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


def cmd_predict(args: argparse.Namespace) -> int:
    from moderncnn.deploy.predict import plot_predictions, predict
    from moderncnn.plotting import check_figure_path

    # Where the grid goes is checked before any work; it is drawn from thumbnails made while reading.
    show = check_figure_path(args.show, "predictions.png") if args.show else None
    result = predict(
        args.run,
        args.images,
        top_k=args.top_k,
        batch_size=args.batch_size,
        device=args.device,
        checkpoint=args.checkpoint,
        thumbnails=show is not None,
        max_pixels=args.max_pixels,
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
    if args.explain and result.predictions:
        from moderncnn.inspect import explain_images

        explained = explain_images(
            args.run, [p.path for p in result.predictions], args.explain, checkpoint=args.checkpoint
        )
        print(f"wrote {len(explained.explanations)} Grad-CAM overlays into {args.explain}", file=sys.stderr)
    if show and result.predictions:
        out = plot_predictions(result.predictions, show)
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
