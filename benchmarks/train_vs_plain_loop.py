"""End-to-end training time: `moderncnn train` vs a plain loop in the textbook's style, same machine.

The plain loop is Dive into Deep Learning's `train_ch6` as the book writes it: torchvision's FashionMNIST with
`transforms.ToTensor()`, a DataLoader (batch 256, shuffled, 4 workers as `get_dataloader_workers()`), the same
network (our `lenet`, Xavier-uniform initialised), SGD with the same learning rate, cross-entropy, test accuracy
after every epoch. `moderncnn train` runs with the network's textbook defaults (which are the same settings) and
is timed as a user sees it: the whole command, start-up included.

    python benchmarks/train_vs_plain_loop.py [--model lenet] [--epochs 10]

Needs the real Fashion-MNIST (../shared/data/prepare ~/.cache/moderncnn/data). Prints a markdown table row pair.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torchvision import datasets, transforms

import moderncnn as mc
from moderncnn.data import data_root
from moderncnn.engine import default_settings
from moderncnn.engine.module import initialise


def plain_loop(model: str, epochs: int, lr: float, batch_size: int) -> tuple[float, float, float]:
    """The textbook's loop; returns (seconds, final train loss, final test accuracy)."""
    started = time.perf_counter()
    torch.manual_seed(0)
    to_tensor = transforms.ToTensor()
    train = datasets.FashionMNIST(str(data_root()), train=True, transform=to_tensor)
    test = datasets.FashionMNIST(str(data_root()), train=False, transform=to_tensor)
    train_iter = torch.utils.data.DataLoader(train, batch_size, shuffle=True, num_workers=4)
    test_iter = torch.utils.data.DataLoader(test, batch_size, shuffle=False, num_workers=4)
    net = mc.create_model(model)
    initialise(net, "xavier")
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        net.train()
        total, count = 0.0, 0
        for x, y in train_iter:
            optimizer.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item() * len(y), count + len(y)
        net.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_iter:
                correct += (net(x).argmax(1) == y).sum().item()
        accuracy = correct / len(test)
    return time.perf_counter() - started, total / count, accuracy


def ours(model: str, epochs: int) -> tuple[float, dict]:
    run = Path(tempfile.mkdtemp()) / "run"
    command = [str(Path(sys.executable).with_name("moderncnn")), "train", model, "--dataset", "fashion-mnist",
               "--epochs", str(epochs), "--quiet", "--run-dir", str(run)]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    results = json.loads((run / "results.json").read_text())
    shutil.rmtree(run.parent)
    return seconds, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    settings = default_settings(args.model)
    fast_seconds, results = ours(args.model, args.epochs)
    slow_seconds, loss, accuracy = plain_loop(args.model, args.epochs, settings["lr"], settings["batch_size"])
    print(
        f"{args.model}, {args.epochs} epochs, lr {settings['lr']}, batch {settings['batch_size']}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print("| path | wall time (s) | final train loss | test acc | speed-up |")
    print("|---|--:|--:|--:|--:|")
    print(
        f"| `moderncnn train {args.model}` | {fast_seconds:.1f} | {results['train_loss']:.3f} | "
        f"{results['test_acc']:.3f} | {slow_seconds / fast_seconds:.2f}x |"
    )
    print(f"| textbook-style loop | {slow_seconds:.1f} | {loss:.3f} | {accuracy:.3f} | 1.00x |")
    print(f"\nours: {results['summary']}")


if __name__ == "__main__":
    main()
