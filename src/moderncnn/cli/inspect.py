"""The ``filters``, ``features``, ``explain`` and ``landscape`` subcommands: parse, call ``moderncnn.inspect``, print.

``add_parsers(subparsers)`` adds all four to the ``moderncnn`` command's subparsers; each handler returns the exit
code. Nothing heavy is imported until a command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

from moderncnn.cli.options import RUN_HELP, add_checkpoint

# moderncnn.inspect.METHODS, repeated so that --help needs no torch (a test keeps the two equal).
METHODS = ("gradcam", "gradcam++", "saliency", "integrated-gradients")


def _checkpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN_OR_CKPT", help=RUN_HELP)
    add_checkpoint(p)


def cmd_filters(args: argparse.Namespace) -> int:
    from moderncnn.inspect import plot_run_filters

    plot = plot_run_filters(args.run, args.out, layer=args.layer, checkpoint=args.checkpoint)
    print(f"wrote {plot.path} ({plot.layer}: {plot.shape[0]} filters of {'x'.join(map(str, plot.shape[1:]))})")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from moderncnn.errors import UsageError
    from moderncnn.inspect import plot_run_features, run_layer_names

    if args.list:
        print("\n".join(run_layer_names(args.run, args.checkpoint)[1:]))  # the first node is the input
        return 0
    if args.image is None:
        raise UsageError("features needs an IMAGE file (or --list to print the layer names)")
    layers = [name.strip() for name in args.layers.split(",") if name.strip()] if args.layers else None
    plot = plot_run_features(args.run, args.image, args.out, layers=layers, checkpoint=args.checkpoint)
    print(f"wrote {plot.path} ({', '.join(plot.shapes)})")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from moderncnn.inspect import explain_images

    explanations, failures = explain_images(
        args.run,
        args.images,
        args.out,
        method=args.method,
        target=args.target,
        layer=args.layer,
        save_maps=args.save_maps,
        checkpoint=args.checkpoint,
    )
    for failure in failures:
        print(f"moderncnn explain: skipped {failure.path}: {failure.reason}", file=sys.stderr)
    for e in explanations:
        mark = f"  WRONG (true: {e.true_label})" if e.wrong else ""
        print(f"{e.path}: {e.label} {e.prob:.3f}{mark} -> {e.overlay}" + (f", {e.map_path}" if e.map_path else ""))
    print(f"wrote {len(explanations)} overlay(s) to {args.out}")
    return 1 if failures else 0


def cmd_landscape(args: argparse.Namespace) -> int:
    from moderncnn.inspect import plot_run_landscape

    result = plot_run_landscape(
        args.run,
        args.out,
        dim=args.dim,
        points=args.points,
        span=args.span,
        subset=args.subset,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        checkpoint=args.checkpoint,
    )
    evaluations = result.loss.numel()
    print(
        f"loss at the trained weights {result.centre:.4f}, lowest {float(result.loss.min()):.4f}, highest "
        f"{float(result.loss.max()):.4f} ({evaluations} points x {result.images} training images, "
        f"{result.seconds:.1f} s)"
    )
    print(f"wrote {result.png}, {result.csv}")
    return 0


def add_parsers(subparsers) -> None:
    """Add ``filters``, ``features``, ``explain`` and ``landscape`` to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "filters",
        help="a convolution's learned filters as an image grid",
        description="Draw the weights of a convolution (default: the first) as a grid, one tile per output "
        "channel: RGB for 3-channel input, grey for 1-channel, each tile scaled from its smallest to its largest "
        "weight; for other inputs each tile is the mean over the input channels.",
    )
    _checkpoint(p)
    p.add_argument("--layer", help="dotted name of a Conv2d (default: the first; see `features RUN --list`)")
    p.add_argument("--out", default="filters.png", help="PNG to write (default: filters.png)")
    p.set_defaults(func=cmd_filters)

    p = subparsers.add_parser(
        "features",
        help="the activations of each stage for one image",
        description="Run one image through the network (preprocessed as in evaluation) and draw each top-level "
        "stage's activations (or the named layers'), the 16 most active channels per layer, through "
        "torchvision.models.feature_extraction.",
    )
    _checkpoint(p)
    p.add_argument("image", nargs="?", metavar="IMAGE", help="an image file")
    p.add_argument("--layers", metavar="A,B,...", help="layer names, comma-separated (default: the top-level stages)")
    p.add_argument("--list", action="store_true", help="print every layer name that --layers takes, and stop")
    p.add_argument("--out", default="features.png", help="PNG to write (default: features.png)")
    p.set_defaults(func=cmd_features)

    p = subparsers.add_parser(
        "explain",
        help="where the network looks: Grad-CAM, Grad-CAM++, saliency or integrated-gradients overlays",
        description="Write an overlay per image (the image beside the image under the heat map, the predicted class "
        "and probability in the title, in red with the true class when the image's folder names another class) to "
        "OUT/<image>_<method>.png. Grad-CAM targets the network's last convolutional stage unless --layer is given. "
        "Exit code 1 when some files could not be read.",
    )
    _checkpoint(p)
    p.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR", help="image files and/or folders (recursively)")
    p.add_argument("--method", default="gradcam", choices=METHODS, help="attribution method (default: gradcam)")
    p.add_argument("--target", metavar="CLASS", help="class to explain, by name or index (default: the prediction)")
    p.add_argument("--layer", help="layer of gradcam/gradcam++ (default: the last convolutional stage)")
    p.add_argument("--out", default="explain", help="folder to write into (default: explain)")
    p.add_argument(
        "--save-maps", action="store_true", help="also write each raw map as .npy (float32, the image's H x W)"
    )
    p.set_defaults(func=cmd_explain)

    p = subparsers.add_parser(
        "landscape",
        help="the loss around the trained weights along filter-normalised random directions",
        description="Evaluate the loss on a fixed, seeded subset of the training split at weights + a*d1 (+ b*d2), "
        "d1 and d2 random directions normalised filter by filter to the trained weights (Li et al. 2018), "
        "BatchNorm statistics fixed. Writes a curve (--dim 1) or a contour plot (--dim 2) and the values as CSV "
        "beside it. A 2-D landscape costs points^2 evaluations of the subset (resnet20: about 1 s per point of 256 "
        "images on one CPU core).",
    )
    _checkpoint(p)
    p.add_argument("--dim", type=int, default=2, choices=[1, 2], help="1: a curve, 2: a contour plot (default: 2)")
    p.add_argument("--points", type=int, default=15, help="points per axis, odd (default: 15)")
    p.add_argument("--span", type=float, default=1.0, help="the grid runs from -S to S (default: 1.0)")
    p.add_argument("--subset", type=int, default=256, help="training images the loss is averaged over (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the directions and the subset (default: 0)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default: 256)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    p.add_argument("--out", default="landscape.png", help="PNG to write, the CSV beside it (default: landscape.png)")
    p.set_defaults(func=cmd_landscape)
