"""Images per second delivered to the model: the device-resident loader vs a torchvision DataLoader.

The DataLoader path is the textbook's: torchvision's dataset returns PIL images, per-image transforms
(Resize / RandomCrop / RandomHorizontalFlip, ToTensor, Normalize), default collation, worker processes.
The device-resident path holds the split as one uint8 tensor and augments whole batches. Both produce
normalised float batches of the same shape; we time how fast they come out (no model), after one warm-up
batch, over the same number of images, in several passes that alternate between the paths: the median pass and
the best one are both printed, since a shared (virtual) machine's speed varies from one second to the next.

    python benchmarks/loader_throughput.py [--images 20000] [--workers 2] [--device cpu] [--repeats 5]

Needs the real data (../shared/data/prepare ~/.cache/moderncnn/data); prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import torch
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from moderncnn.data import BatchAugment, DeviceLoader, data_root, dataset_stats, load_dataset
from moderncnn.data.datasets import CIFAR10


def timed(batches, limit: int) -> float:
    """Images per second over ``limit`` images after one warm-up batch (one pass)."""
    iterator = iter(batches)
    next(iterator)
    seen, start = 0, time.perf_counter()
    for x, _ in iterator:
        seen += len(x)
        if seen >= limit:
            break
    rate = seen / (time.perf_counter() - start)
    del iterator  # a DataLoader's workers stop here, before the next pass is timed
    return rate


def median(rates: list[float]) -> float:
    return sorted(rates)[len(rates) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000, help="images timed per case")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per path and case")
    args = parser.parse_args()
    root = data_root()
    cases = [
        ("fashion-mnist", "none", None, 256),
        ("fashion-mnist", "d2l", 224, 128),
        ("cifar10", "cifar", None, 128),
    ]
    print(
        f"{date.today()} · {platform.processor() or platform.machine()} · {torch.get_num_threads()} threads · "
        f"device {args.device} · {args.images} images per pass, {args.repeats} passes per path: median (best) · "
        f"DataLoader workers {args.workers}\n"
    )
    print("| dataset | preset | resize | batch | device-resident img/s | DataLoader img/s | speed-up (of best) |")
    print("|---|---|---|--:|--:|--:|--:|")
    for name, preset, resize, batch in cases:
        data = load_dataset(name, download=False)
        mean, std = dataset_stats(data)
        augment = BatchAugment(
            preset, mean=mean, std=std, resize=resize, generator=torch.Generator(device=args.device).manual_seed(0)
        )
        fast_loader = DeviceLoader(
            data.splits["train"], batch, transform=augment, shuffle=True, drop_last=True, device=args.device
        )

        steps = []
        if preset == "cifar":
            steps += [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip()]
        if resize:
            steps.append(transforms.Resize(resize))
        steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
        reader = FashionMNIST if name == "fashion-mnist" else CIFAR10
        dataset = reader(str(root), train=True, transform=transforms.Compose(steps))
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=args.workers
        )
        # Passes alternate between the two paths, so that both see the same moments of a machine whose speed varies.
        fast, slow = [], []
        for _ in range(args.repeats):
            fast.append(timed(fast_loader, args.images))
            slow.append(timed(loader, args.images))
        print(
            f"| {name} | {preset} | {resize or 'native'} | {batch} | {median(fast):,.0f} ({max(fast):,.0f}) "
            f"| {median(slow):,.0f} ({max(slow):,.0f}) | {median(fast) / median(slow):.1f}x "
            f"({max(fast) / max(slow):.1f}x) |"
        )


if __name__ == "__main__":
    main()
