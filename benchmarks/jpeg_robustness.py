"""Does JPEG augmentation (``--jpeg``) keep a network's accuracy on JPEG files without costing clean accuracy?

    python benchmarks/jpeg_robustness.py                       # resnet20 on CIFAR-10, --recipe fast, 8 epochs
    python benchmarks/jpeg_robustness.py --fractions 0 0.25 0.5 --epochs 30

Trains the same network once per ``--jpeg`` fraction (same seed and recipe otherwise), then measures each run's test
accuracy on the test split as it is (lossless) and saved as JPEG files by PIL at quality 95 and 75 and read back
(``moderncnn.reproduce.publish``'s measurement, the one the model cards report). The issue's reference point,
without augmentation: 0.837 lossless, 0.822 at quality 95, 0.758 at quality 75. Runs go under ``--out`` and are
kept; a finished one is measured again without training. Needs the dataset; one heavy job at a time on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--recipe", default="fast", help="the recipe budget the runs start from (default: fast)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.5], help="--jpeg values compared")
    parser.add_argument("--limit-batches", type=float, help="batches per epoch, for a quick check of the script")
    parser.add_argument("--out", default="runs/jpeg-robustness")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from moderncnn.engine import config_from, train
    from moderncnn.reproduce.publish import JPEG_QUALITIES, _test_split, jpeg_images, predictions
    from moderncnn.run.checkpoint import load_run
    from moderncnn.run.recipes import recipe_settings
    from moderncnn.rundir import RunDir

    rows = []
    for fraction in args.fractions:
        run = RunDir(Path(args.out) / f"{args.model}-{args.dataset}-jpeg{fraction:g}")
        if not run.is_finished:
            settings = recipe_settings(args.recipe, args.model, dataset=args.dataset) if args.recipe else {}
            overrides = {"dataset": args.dataset, "epochs": args.epochs, "jpeg": fraction, "run_dir": str(run)}
            if args.limit_batches:
                overrides["limit_batches"] = args.limit_batches
            train(config_from(args.model, **{**settings, **overrides}), quiet=True)
        net, info = load_run(run.best if info_checkpoint(run) == "best" else run.last)
        images, labels, _ = _test_split(info, None)
        scores = [float((predictions(net, images, info) == labels).float().mean())]
        scores += [
            float((predictions(net, jpeg_images(images, q), info) == labels).float().mean()) for q in JPEG_QUALITIES
        ]
        rows.append(
            f"| {fraction:g} | " + " | ".join(f"{s:.4f}" for s in scores) + f" | {scores[0] - scores[-1]:+.4f} |"
        )
        print(rows[-1], flush=True)
    print(f"\n{args.model} on {args.dataset}, --recipe {args.recipe}, {args.epochs} epochs, test accuracy:\n")
    print("| --jpeg | lossless | " + " | ".join(f"JPEG q{q}" for q in JPEG_QUALITIES) + " | gap at q75 |")
    print("|--:|--:|" + "--:|" * len(JPEG_QUALITIES) + "--:|")
    print("\n".join(rows))
    return 0


def info_checkpoint(run) -> str:
    return run.read_config().get("test_checkpoint", "last")


if __name__ == "__main__":
    sys.exit(main())
