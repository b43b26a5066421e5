"""``moderncnn demo``: the offline tour (train, evaluate, predict, export) on the bundled digits."""

from __future__ import annotations

import argparse


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="offline: train LeNet-BN on the bundled digits, evaluate it, and show what to run next",
        description="Train the textbook's BatchNorm LeNet on scikit-learn's bundled handwritten digits (no download; "
        "under a minute on the CPU), write a run directory, evaluate it on the test split (confusion matrix), predict "
        "saved test images, export to ONNX and print the next commands. --dataset fashion-mnist or mnist does the "
        "same on that dataset (downloaded on first use).",
    )
    p.add_argument("--dataset", default="digits", help="digits (default), fashion-mnist or mnist")
    p.add_argument("--data-dir", help="data root for fashion-mnist/mnist (default: $MODERNCNN_DATA, else ~/.cache/...)")
    p.add_argument("--run-dir", help="run directory (default: runs/lenet_bn-<dataset>-<time>)")
    p.add_argument("--epochs", type=int, help="passes over the training split (default: 15 on digits, 5 otherwise)")
    p.add_argument("--seed", type=int, default=42, help="seed of the validation split, initialisation and data order")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from moderncnn.demo import run_demo

    run_demo(
        args.dataset, run_dir=args.run_dir, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir, quiet=args.quiet
    )
    return 0
