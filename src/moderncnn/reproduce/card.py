"""A model card per published weight, written from its run's ``results.json`` and ``config.yaml`` and what
:mod:`moderncnn.reproduce.publish` measured on the stored file: what the network is, the data and split, every
setting, the test accuracy (per class, with the confusion matrix), time and hardware, the published figure,
robustness to JPEG, and the limits of its use."""

from __future__ import annotations

from pathlib import Path

from moderncnn.files import write_text
from moderncnn.weights.table import WeightsInfo

DATASETS = {
    "digits": "scikit-learn's bundled handwritten digits (UCI optical recognition of handwritten digits: 1,797 "
    "8x8 grey images of 0-9 written by 43 people)",
    "fashion-mnist": "Fashion-MNIST (Xiao et al. 2017: 28x28 grey photos of clothing in 10 classes; 60,000 "
    "training and 10,000 test images)",
    "mnist": "MNIST (LeCun et al. 1998: 28x28 grey handwritten digits; 60,000 training and 10,000 test images)",
    "cifar10": "CIFAR-10 (Krizhevsky 2009: 32x32 colour photos in 10 classes; 50,000 training and 10,000 test images)",
    "cifar100": "CIFAR-100 (Krizhevsky 2009: 32x32 colour photos in 100 classes)",
}


def write_card(info: WeightsInfo, results: dict, measured, splits: dict[str, int], path: Path) -> Path:
    """Write the model card of ``info`` to ``path`` (markdown; the confusion figure lies beside it)."""
    from moderncnn.registry import get_model_info

    model = get_model_info(info.network)
    config = info.config
    tta = (
        f" ({_pct(info.test_acc_tta)} with {info.tta} test-time augmentation)" if info.test_acc_tta is not None else ""
    )
    per_class = [row[i] / max(1, sum(row)) for i, row in enumerate(measured.confusion)]
    lines = [
        f"# {info.name}",
        "",
        f"`{info.network}` trained on `{info.dataset}` by moderncnn: test accuracy {_pct(info.test_acc)}{tta} on the "
        f"full test split of {measured.images:,} images.",
        "",
        "```",
        f"moderncnn predict weights:{info.name} IMAGE.png",
        f"python -c \"import moderncnn as mc; net = mc.create_model('{info.network}', pretrained='{info.dataset}')\"",
        "```",
        "",
        "## The network",
        "",
        f"`{info.network}` ({model.family}, {model.variant} variant): {model.source}. "
        f"{results.get('params', 0):,} parameters, {results.get('flops', 0) / 1e6:.1f} MFLOPs per image "
        f"at {info.in_channels}x{info.input_size}x{info.input_size}"
        + (f"; built with {info.model_kwargs}" if info.model_kwargs else "")
        + ".",
        "",
        "## Data and split",
        "",
        f"{DATASETS.get(info.dataset, info.dataset)}. Split used: "
        + ", ".join(f"{n:,} {name}" for name, n in splits.items())
        + (
            f" (validation carved from the training images with seed {config.get('seed')}; the test split was never "
            "used to choose anything)"
            if splits.get("val")
            else " (no validation split: each epoch was checked on the test split, which chose nothing, since the "
            "last checkpoint is the one published)"
        )
        + ". Images are normalised with "
        + ("the recipe's fixed per-channel statistics" if config.get("mean") else "the training split's own statistics")
        + f": mean {_floats(info.mean)}, std {_floats(info.std)}; the network sees {info.input_size} px "
        f"{'grey' if info.in_channels == 1 else 'RGB'} images.",
        "",
        "## Recipe",
        "",
        f"Trained with {info.recipe} for {info.epochs} epochs; "
        f"the {config.get('test_checkpoint', 'last')} checkpoint is the one tested and published. "
        "Every setting (`config.yaml`; `moderncnn train --config` repeats the run):",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {key} | {_value(value)} |" for key, value in config.items()),
        "",
        "## Results",
        "",
        f"- Test accuracy of the published file: {_pct(info.test_acc)}{tta}; the run reported "
        f"{_pct(info.run_test_acc)}"
        + (f" (with {info.tta} TTA)" if results.get("test_tta") else "")
        + f". Stored as {info.dtype}: the smallest format whose test accuracy stays within 0.2 points of the run's.",
        f"- {'Validation' if splits.get('val') else 'Test-split'} accuracy of the best epoch's check: "
        f"{_pct(results.get('best_val_acc'))}; final train accuracy "
        f"{_pct(results.get('train_acc'))}, train loss {results.get('train_loss', float('nan')):.4f}.",
        "",
        "| class | test accuracy |",
        "|---|--:|",
        *(f"| {name} | {_pct(acc)} |" for name, acc in zip(info.class_names, per_class, strict=True)),
        "",
        f"![confusion matrix]({info.name}-confusion.png)",
        "",
        "## Training time and hardware",
        "",
        f"{info.epochs} epochs in {_minutes(info.train_seconds)} of training ({_minutes(results.get('wall_seconds'))} "
        f"with validation and test), {results.get('examples_per_sec', 0):,.0f} training images/s on "
        f"{info.hardware}; precision {config.get('precision')}.",
        "",
        "## Compared with the published figure",
        "",
        _published(info),
        "",
        "## Robustness to JPEG",
        "",
        "The test split saved as JPEG files by PIL and read back, as a user's photos arrive:",
        "",
        "| test images | accuracy |",
        "|---|--:|",
        f"| lossless (PNG) | {_pct(info.test_acc)} |",
        *(f"| JPEG quality {q} | {_pct(acc)} |" for q, acc in info.jpeg_acc.items()),
        "",
        (
            f"Trained with JPEG augmentation (a fraction {config.get('jpeg')} of the batches re-encoded at quality "
            f"{config.get('jpeg_quality')})."
            if config.get("jpeg")
            else "Trained without JPEG augmentation."
        ),
        "",
        "## Limitations",
        "",
        f"- Inputs are {info.input_size}x{info.input_size} px {'grey' if info.in_channels == 1 else 'colour'} "
        "images; larger images are shrunk to that size, which loses detail the network never learned to use.",
        f"- It knows the {info.num_classes} classes of {info.dataset} only ({', '.join(info.class_names)}); any other "
        "image is still put into one of them, often with a high probability.",
        f"- Its images come from one collection ({info.dataset}); photos framed, lit or centred differently score "
        "lower than the test split says.",
        "",
        "## File",
        "",
        f"`{info.file}`: safetensors, {info.dtype}, {info.size:,} bytes, sha256 `{info.sha256}` (checked on every "
        "load); " + ("ships inside the package." if info.bundled else f"downloaded from {info.url}."),
        "",
    ]
    return write_text(path, "\n".join(lines))


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * float(value):.2f}%"


def _floats(values) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in values) + "]"


def _minutes(seconds) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _value(value) -> str:
    return "" if value is None else str(value).replace("|", "\\|")


def _published(info: WeightsInfo) -> str:
    published = info.published
    if not published:
        return f"No published figure for {info.network} on {info.dataset} is known to us."
    value = float(published["value"])

    def beside(acc: float) -> str:
        return f"{_pct(acc)}, {100 * (float(acc) - value):+.2f} points"

    ours = beside(info.test_acc)
    if info.test_acc_tta is not None:  # a figure published with test-time views compares with ours with them
        ours += f"; with {info.tta} TTA {beside(info.test_acc_tta)}"
    return f"{published['label']}: {_pct(value)} ({published.get('source', '')}); this file: {ours}."
