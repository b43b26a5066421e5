"""``moderncnn demo``: the whole job in one command, offline: train, evaluate, predict, export, and what next.

On ``digits`` (scikit-learn's bundled handwritten digits: no download, no data root) it trains the textbook's
BatchNorm LeNet on the CPU in well under a minute, writes a normal run directory (``config.yaml``,
``metrics.csv``, checkpoints, ``curves.png``), prints the textbook's summary line, evaluates ``best.ckpt``
on the test split (``confusion-test.png``), predicts a few test images saved as PNG files (``predictions.png``),
exports the network to ONNX (checked with onnxruntime) and prints the commands a user would run next. With
``dataset="fashion-mnist"`` (or ``mnist``) it does the same on that dataset, downloaded on first use.

The demo composes the library and adds nothing to it: the same run comes from ``moderncnn train`` with the
settings of ``demo_config`` (they are in the run's ``config.yaml``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from moderncnn.data import data_root, load_dataset
from moderncnn.deploy import export, plot_predictions, predict
from moderncnn.engine import RunResult, TrainConfig, make_config, train
from moderncnn.engine.evaluate import Evaluation, evaluate
from moderncnn.errors import UsageError
from moderncnn.rundir import RunDir

MODEL = "lenet_bn"

# The demo's settings per dataset, on top of the network's own defaults (plain SGD, Xavier init).
# digits: 1,257 training images make only 4 steps per epoch at the textbook's batch of 256, so the batch is 64
# and SGD gets momentum and a cosine schedule. 15 epochs take about 5 s on one CPU core (10-11 s for the whole
# command); over seeds 0-9 and 42, best.ckpt scored 0.969-0.992 on the test split, the last epoch 0.981-0.992.
# The 8x8 images are upsampled to LeNet's 28 px by the resize setting.
# Fashion-MNIST and MNIST: the textbook's LeNet-BN recipe (batch 256, lr 1.0) for 5 epochs, the former `make demo`.
# Both hold out a validation split, so that best.ckpt is chosen without looking at the test split.
RECIPES = {
    "digits": {
        "val_size": 180,
        "resize": 28,
        "epochs": 15,
        "batch_size": 64,
        "lr": 0.1,
        "momentum": 0.9,
        "schedule": "cosine",
        "accelerator": "cpu",
    },
    "fashion-mnist": {"val_size": 5000, "epochs": 5},
    "mnist": {"val_size": 5000, "epochs": 5},
}

# Intra-op threads on the CPU. LeNet's operations are small (a batch of 28 px images), and with two threads each
# one ends at a barrier where the threads wait for each other; when another process holds a core, that wait lasts
# a scheduler time slice. Measured on 2 shared cores with one other busy process: the digits run took 64-72 s
# with two threads and 4-6 s with one (with the same metrics); Fashion-MNIST trained at 600 instead of 10,000
# examples/sec. On an idle machine one thread is about as fast as two for a network this small.
CPU_THREADS = 1

NEXT_STEPS = (
    (
        "moderncnn train lenet_bn --dataset fashion-mnist --epochs 5",
        "the textbook's LeNet on Fashion-MNIST (downloaded on first use)",
    ),
    ("moderncnn reproduce d2l-ch7", "every chapter-7 network with the book's settings, beside the book's results"),
)
# The CIFAR-10 weights the demo points at, in order of preference, when the weights table has one of them.
CIFAR10_WEIGHTS = ("resnet20-cifar10", "airbench94-cifar10", "resnet_uva-cifar10")


def next_steps() -> list[tuple[str, str]]:
    """The commands the demo suggests: the fixed ones, and a published CIFAR-10 weight on a photo when one ships."""
    from moderncnn.weights import table

    shipped = [info for info in table().values() if info.dataset == "cifar10"]
    if not shipped:
        return list(NEXT_STEPS)
    rank = {name: i for i, name in enumerate(CIFAR10_WEIGHTS)}
    best = min(shipped, key=lambda info: (rank.get(info.name, len(rank)), -(info.test_acc or 0)))
    what = f"our {best.network} trained on CIFAR-10 ({100 * (best.test_acc or 0):.1f}% test) on your photo, no training"
    return [*NEXT_STEPS, (f"moderncnn predict weights:{best.name} PHOTO.jpg", what)]


@dataclass
class DemoResult:
    """What the demo measured.

    Attributes:
        run: the training run (``str()`` is the textbook's summary line; its test accuracy is the last epoch's).
        evaluation: ``best.ckpt`` on the test split.
        confusion_png: the confusion matrix of that evaluation.
        seconds: wall time of the demo, loading the data included.
        predicted, predicted_right: test images saved as PNG files and predicted from them, and how many right.
        predictions_png: the labelled grid of those predictions.
        onnx_path: the ONNX export, verified against the network by onnxruntime.
    """

    run: RunResult
    evaluation: Evaluation
    confusion_png: Path
    seconds: float
    predicted: int = 0
    predicted_right: int = 0
    predictions_png: Path | None = None
    onnx_path: Path | None = None

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def test_acc(self) -> float:
        """Test accuracy of ``best.ckpt``, the checkpoint that predict and export use."""
        return self.evaluation.accuracy


def demo_config(
    dataset: str = "digits",
    *,
    run_dir: str | Path | None = None,
    epochs: int | None = None,
    seed: int = 42,
    data_dir: str | None = None,
) -> TrainConfig:
    """The demo's training settings for ``dataset`` (one of ``RECIPES``)."""
    if dataset not in RECIPES:
        raise UsageError(f"the demo runs on {', '.join(RECIPES)}, not {dataset!r}; use `moderncnn train` for others")
    settings = {**RECIPES[dataset], **({"epochs": epochs} if epochs is not None else {})}
    run_dir = str(run_dir) if run_dir is not None else None
    return make_config(MODEL, dataset=dataset, **settings, seed=seed, data_dir=data_dir, run_dir=run_dir)


def run_demo(
    dataset: str = "digits",
    *,
    run_dir: str | Path | None = None,
    epochs: int | None = None,
    seed: int = 42,
    data_dir: str | None = None,
    quiet: bool = False,
    log: Callable[[str], None] | None = print,
) -> DemoResult:
    """Train the demo network on ``dataset``, evaluate it on the test split, and say what to run next.

    Args:
        dataset: ``digits`` (offline, the default), ``fashion-mnist`` or ``mnist`` (downloaded on first use).
        run_dir: the run directory (default: ``runs/lenet_bn-<dataset>-<time>``); it must not hold a run.
        epochs: override the recipe's number of epochs.
        seed: seed of the validation split, initialisation and data order.
        data_dir: data root for the downloaded datasets.
        quiet: no progress bar.
        log: where the demo's lines go (``None``: nowhere).

    Raises:
        ValueError: a dataset the demo has no recipe for, or one that is missing and cannot be downloaded.
    """
    say = log or (lambda line: None)
    started = time.perf_counter()
    config = demo_config(dataset, run_dir=run_dir, epochs=epochs, seed=seed, data_dir=data_dir)
    if run_dir is not None and RunDir(run_dir).last.exists():
        raise UsageError(f"{run_dir} already holds a run; give the demo another --run-dir, or none for a new one")
    # Fails here, in one line, when a downloaded dataset is missing and the network is not there.
    data = load_dataset(dataset, data_dir=data_dir, val_size=config.val_size, seed=seed)
    sizes = " / ".join(f"{len(split):,} {name}" for name, split in data.splits.items())
    source = "scikit-learn's handwritten digits, no download" if dataset == "digits" else f"in {data_root(data_dir)}"
    size = f"{data.image_size}x{data.image_size} px" + (
        f", upsampled to {config.resize} px" if config.resize not in (None, data.image_size) else ""
    )
    say(f"{dataset} ({source}): {sizes} images of {size}, {data.num_classes} classes")
    say(f"training {MODEL} for {config.epochs} epochs (batch {config.batch_size}, lr {config.lr}) ...")

    threads = torch.get_num_threads()
    if config.accelerator == "cpu" or not torch.cuda.is_available():
        torch.set_num_threads(CPU_THREADS)  # restored below: the caller's process keeps its own setting
    try:
        result = train(config, quiet=quiet)
        say(str(result))
        say(f"run directory: {result.run_dir} (config.yaml, metrics.csv, checkpoints/, curves.png)")
        evaluation = evaluate(result.run_dir, split="test")
    finally:
        torch.set_num_threads(threads)
    confusion = evaluation.save_confusion(title=f"{MODEL} on {dataset} (test, best.ckpt)")
    say(
        f"test accuracy of best.ckpt: {evaluation.accuracy:.4f} on {evaluation.images:,} images; confusion: {confusion}"
    )
    predicted, right, predictions_png = _predict_samples(data, Path(result.run_dir))
    say(f"predicted {predicted} test images saved as PNG files: {right} right; labelled grid: {predictions_png}")
    exported = export(result.run_dir, "onnx")
    say(f"exported to ONNX and checked with onnxruntime: {exported}")

    say("next:")
    steps = next_steps()
    width = max(len(command) for command, _ in steps)
    for command, what in steps:
        say(f"  {command:<{width}}  # {what}")
    return DemoResult(
        result, evaluation, confusion, time.perf_counter() - started, predicted, right, predictions_png, exported.path
    )


def _predict_samples(data, run_dir: Path, count: int = 16) -> tuple[int, int, Path]:
    """Save ``count`` test images as ``run_dir/samples/<class>/<i>.png`` (as a user's own files would be) and
    predict them from those files; returns (images, right, the labelled grid)."""
    from PIL import Image

    test = data.splits["test"]
    folder = run_dir / "samples"
    for i in range(min(count, len(test))):
        image, label = test.images[i], int(test.labels[i])
        path = folder / data.classes[label] / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = image.permute(1, 2, 0).squeeze(-1).numpy()  # (H, W) grey or (H, W, 3) colour
        Image.fromarray(pixels).save(path)
    predictions, _ = predict(run_dir, folder)
    grid = plot_predictions(predictions, run_dir / "predictions.png")
    right = sum(p.label == p.true_label for p in predictions)
    return len(predictions), right, grid
