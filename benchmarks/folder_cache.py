"""Training speed on CIFAR-10 as a folder of JPEG files, decoded once (``data.cache``), against in-memory CIFAR-10.

Makes the folder once from the real CIFAR-10 (``FOLDER/train/<class>/*.jpg``, ``FOLDER/test/<class>/*.jpg``, JPEG
quality 95, default ``~/.cache/moderncnn/cifar10-jpeg``, outside the repository), then trains the same network
with the same settings on:

1. the folder, first run: the cache is removed first, the decoding time is reported on its own;
2. the folder, second run: read from the cache;
3. in-memory ``cifar10``;
4. the folder without the cache (``DataLoader`` path, decoding every epoch), with ``--dataloader``.

and prints training examples/sec of each (``moderncnn train``'s own figure: training steps only). The runs are
``--limit-batches``-style short runs (``--batches``, default 100 per epoch, one epoch); the issue's target is the
cached folder within 10% of in-memory CIFAR-10.

    python benchmarks/folder_cache.py [--model resnet20] [--batches 100] [--epochs 1] [--folder DIR] [--dataloader]

Needs the real CIFAR-10 (``../shared/data/prepare ~/.cache/moderncnn/data``); the first call writes 60,000 JPEG files.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from moderncnn.data import data_root, load_dataset
from moderncnn.data.cache import cache_folder
from moderncnn.engine import make_config, train


def make_jpeg_folder(folder: Path, per_class: int | None) -> None:
    """CIFAR-10's train and test splits as JPEG files, one sub-folder per class (skipped when already there)."""
    marker = folder / ".complete"
    if marker.is_file():
        return
    data = load_dataset("cifar10", val_size=0)
    for split in ("train", "test"):
        images, labels = data.splits[split].images, data.splits[split].labels
        counts: dict[int, int] = {}
        for i in range(len(labels)):
            label = int(labels[i])
            if per_class is not None and counts.get(label, 0) >= per_class:
                continue
            counts[label] = counts.get(label, 0) + 1
            out = folder / split / data.classes[label] / f"{i:05d}.jpg"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(out, quality=95)
    marker.write_text("")


def run(dataset: str, args: argparse.Namespace, cache_root: Path, cache: bool = True) -> float:
    """Training examples/sec of one short run (``cache=False``: the folder goes through the DataLoader path)."""
    overrides = {"precision": args.precision, "channels_last": args.channels_last}
    config = make_config(
        args.model,
        dataset=dataset,
        data_dir=str(cache_root) if dataset.startswith("imagefolder:") else None,
        epochs=args.epochs,
        limit_batches=args.batches,
        num_workers=args.workers,
        cache=None if cache else False,
        run_dir=tempfile.mkdtemp(prefix="folder-cache-run-"),
        **{k: v for k, v in overrides.items() if v is not None},
    )
    shutil.rmtree(config.run_dir)
    try:
        result = train(config, quiet=True)
    finally:
        shutil.rmtree(config.run_dir, ignore_errors=True)
    return result.examples_per_sec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batches", type=float, default=100, help="training batches per epoch (limit_batches)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--folder", type=Path, default=Path("~/.cache/moderncnn/cifar10-jpeg").expanduser())
    parser.add_argument("--per-class", type=int, help="images per class and split (default: all)")
    parser.add_argument("--precision", help="as moderncnn train --precision (default: the engine's)")
    parser.add_argument("--channels-last", action="store_const", const=True, help="as moderncnn train")
    parser.add_argument("--dataloader", action="store_true", help="also time the folder without the cache")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for --dataloader")
    args = parser.parse_args()

    started = time.perf_counter()
    make_jpeg_folder(args.folder, args.per_class)
    print(f"JPEG folder {args.folder} ready in {time.perf_counter() - started:.0f} s")
    dataset = f"imagefolder:{args.folder}"
    cache_root = data_root() / "folder-cache-benchmark"
    shutil.rmtree(cache_root / "cache", ignore_errors=True)
    started = time.perf_counter()
    folder = cache_folder(load_dataset(dataset, val_size=0.1), cache_root / "cache", size=32)
    decode_s = time.perf_counter() - started
    images = sum(len(s) for s in folder.splits.values())
    shutil.rmtree(cache_root / "cache")  # the first training run decodes again, as a new user's would

    rows = [("folder, first run (decodes)", run(dataset, args, cache_root))]
    rows.append(("folder, second run (cached)", run(dataset, args, cache_root)))
    rows.append(("cifar10 in memory", run("cifar10", args, cache_root)))
    if args.dataloader:
        rows.append(("folder, DataLoader (no cache)", run(dataset, args, cache_root, False)))
    memory = rows[2][1]
    print(f"\ndecoding {images:,} images once: {decode_s:.1f} s ({images / decode_s:,.0f} images/s)")
    print(f"{args.model}, {args.epochs} epoch(s) of {args.batches:g} batches\n")
    print("| data | training examples/sec | vs in memory |")
    print("|---|--:|--:|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.1f} | {rate / memory:.2f}x |")


if __name__ == "__main__":
    main()
