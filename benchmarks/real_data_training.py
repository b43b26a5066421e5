"""Real-data training results on this machine: wall time and accuracy of `moderncnn train` runs.

Each case is the whole command as a user types it (start-up, statistics, checkpoints and the final test pass
included), run one after the other in a fresh process, timed from outside. Prints one markdown row per case
with the textbook's summary line, ready for ``benchmarks/RESULTS.md``.

    python benchmarks/real_data_training.py                      # lenet, lenet_bn (Fashion-MNIST, 10 epochs)
    python benchmarks/real_data_training.py --cases resnet20     # CIFAR-10, 24 epochs, cosine (about 26 min)

Needs the real data (``../shared/data/prepare ~/.cache/moderncnn/data``); exits with a message when absent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from moderncnn.data import data_root

# name -> (dataset folder under the data root, `moderncnn train` arguments)
CASES = {
    "lenet": ("FashionMNIST", ["lenet", "--dataset", "fashion-mnist", "--epochs", "10"]),
    "lenet_bn": ("FashionMNIST", ["lenet_bn", "--dataset", "fashion-mnist", "--epochs", "10"]),
    "resnet20": ("cifar-10-batches-py", ["resnet20", "--dataset", "cifar10", "--epochs", "24", "--schedule", "cosine"]),
    # Fast by default (issue 12): the same short run with no speed flags (auto) and in plain fp32, back to back.
    "resnet20-auto": (
        "cifar-10-batches-py",
        ["resnet20", "--dataset", "cifar10", "--epochs", "3", "--schedule", "cosine"],
    ),
    "resnet20-fp32": (
        "cifar-10-batches-py",
        ["resnet20", "--dataset", "cifar10", "--epochs", "3", "--schedule", "cosine", "--precision", "32"],
    ),
    # The baseline: fp32 in the contiguous layout, what `moderncnn train` ran before `auto` existed.
    "resnet20-fp32-contiguous": (
        "cifar-10-batches-py",
        [
            *["resnet20", "--dataset", "cifar10", "--epochs", "3", "--schedule", "cosine"],
            *["--precision", "32", "--channels-last", "false"],
        ],
    ),
}


def run_case(name: str, out: Path) -> dict:
    folder, args = CASES[name]
    if not (data_root() / folder).exists():
        sys.exit(f"{folder} is not in {data_root()}; run ../shared/data/prepare {data_root()} first")
    run_dir = out / name
    command = [sys.executable, "-m", "moderncnn.cli", "train", *args, "--quiet", "--run-dir", str(run_dir)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    results = json.loads((run_dir / "results.json").read_text())
    return {"name": name, "command": "moderncnn train " + " ".join(args), "wall": wall, **results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="lenet,lenet_bn", help=f"comma-separated, from {', '.join(CASES)}")
    args = parser.parse_args()
    names = args.cases.split(",")
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"unknown cases {unknown}; valid: {', '.join(CASES)}")
    print("| command | wall time (s) | best val acc | test acc | summary line |")
    print("|---|--:|--:|--:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            r = run_case(name, Path(tmp))
            cells = [f"`{r['command']}`", f"{r['wall']:.1f}", f"{r['best_val_acc']:.4f}", f"{r['test_acc']:.4f}"]
            print("| " + " | ".join([*cells, r["summary"]]) + " |")


if __name__ == "__main__":
    main()
