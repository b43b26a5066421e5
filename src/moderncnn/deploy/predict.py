"""``predict(run, images)``: class probabilities for image files, with the run's own preprocessing.

An image goes through exactly what the network saw in evaluation, the run's
:meth:`~moderncnn.run.checkpoint.RunInfo.preprocess`: decoded by PIL (as image folders are read for training),
converted to the network's channels (luma for grey networks, replicated grey for RGB ones), scaled to [0, 1],
normalised with the run's mean and std and resized to its input size (bilinear, antialiased) by the same
``BatchAugment`` the training loader uses. A file that cannot be read is reported by name and skipped; the others
are still predicted. High-bit-depth images are scaled by their range, images above the pixel limit refused and large
ones shrunk while they are read, to a few times the input size (:mod:`moderncnn.data.image`). For a grid of the
images (``--show``), small thumbnails are made while the images are read, so no full-size image is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from moderncnn.constants import IMG_EXTENSIONS
from moderncnn.data.image import UnreadableImage, open_image, thumbnail
from moderncnn.errors import UsageError
from moderncnn.plotting import check_figure_path, pyplot, save_figure
from moderncnn.run.checkpoint import checkpoint_path, load_run

# torchvision's image-folder extensions, and GIF (PIL reads its first frame).
IMAGE_EXTENSIONS = tuple(sorted({*IMG_EXTENSIONS, ".gif"}))
# Longer side of a grid thumbnail: a cell of plot_predictions' grid is 1.6 inches wide at 100 dpi.
THUMBNAIL_SIZE = 160


@dataclass
class Prediction:
    """The top-k classes of one image, most probable first.

    ``true_label`` is the class the image's folder is named after (``.../cat/001.png`` → ``cat``), when it is one
    of the run's classes, as in an image-folder layout; else ``None``. ``thumbnail`` is a small uint8 RGB
    ``(3, h, w)`` copy of the image when :func:`predict` was asked for one (for :func:`plot_predictions`).
    """

    path: str
    classes: list[str]
    probs: list[float]
    true_label: str | None = None
    thumbnail: Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return self.classes[0]

    @property
    def prob(self) -> float:
        return self.probs[0]

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "label": self.label,
            "prob": self.prob,
            "top_k": [{"class": c, "prob": p} for c, p in zip(self.classes, self.probs, strict=True)],
            "true_label": self.true_label,
        }


@dataclass
class Failure:
    """A path that could not be predicted, and why."""

    path: str
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


class PredictResult(NamedTuple):
    """What :func:`predict` returns; unpacks as ``predictions, failures = predict(...)``."""

    predictions: list[Prediction]
    failures: list[Failure]


def find_images(inputs: Iterable[str | Path]) -> tuple[list[Path], list[Failure]]:
    """Expand files and directories into image paths, in the order given (directories sorted, recursively).

    In a directory only files with an image extension count (hidden files, such as macOS's ``._x.jpg``, do not);
    a file named explicitly is always tried, whatever its extension. A path that does not exist is a failure.
    """
    found: list[Path] = []
    missing: list[Failure] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
            )
        elif path.exists():
            found.append(path)
        else:
            missing.append(Failure(str(path), "no such file or directory"))
    return found, missing


def check_device(device: str) -> torch.device:
    """``device`` as a ``torch.device`` that exists here, else a one-line error."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"unknown device {device!r} ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} asked for, but torch sees no CUDA device; use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {device!r} asked for, but MPS is not available; use --device cpu")
    return dev


def predict(
    run_or_ckpt: str | Path,
    inputs: str | Path | Sequence[str | Path],
    *,
    top_k: int = 5,
    batch_size: int = 64,
    device: str = "cpu",
    checkpoint: str = "best",
    thumbnails: bool = False,
    max_pixels: int | None = None,
) -> PredictResult:
    """Predict the classes of image files with a trained run.

    Args:
        run_or_ckpt: a run directory (its ``checkpoints/<checkpoint>.ckpt`` is used) or a ``.ckpt`` file.
        inputs: image files and/or directories (searched recursively for image extensions).
        top_k: classes to keep per image (at most the number of classes).
        batch_size: images decoded and run together.
        device: where the network runs (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
        checkpoint: ``best`` or ``last`` when ``run_or_ckpt`` is a run directory.
        thumbnails: also keep a small copy of each image (``Prediction.thumbnail``) for :func:`plot_predictions`,
            made while the image is read, so the grid never needs the full-size images again.
        max_pixels: the largest image read (default: ``$MODERNCNN_MAX_PIXELS``, else PIL's bomb warning level);
            a larger one is a failure naming its size and how to raise the limit.

    Returns:
        ``(predictions, failures)``: one :class:`Prediction` per readable image, in input order, and one
        :class:`Failure` per path that does not exist or cannot be decoded.

    Raises:
        ValueError: a bad run or checkpoint, a bad option, or no image file found at all.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if not isinstance(top_k, int) or top_k < 1:
        raise UsageError(f"top_k must be a positive integer, got {top_k!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    dev = check_device(device)
    ckpt = checkpoint_path(run_or_ckpt, checkpoint)  # a bad run is reported before the images are searched
    paths, failures = find_images(inputs)
    if not paths:
        given = ", ".join(str(i) for i in inputs) or "(nothing)"
        missing = f"; not found: {', '.join(f.path for f in failures)}" if failures else ""
        raise UsageError(f"no image files in {given} (extensions: {', '.join(IMAGE_EXTENSIONS)}){missing}")
    net, info = load_run(ckpt)
    net = net.to(dev)
    names = info.class_names
    preprocess = info.preprocess()
    k = min(top_k, len(names))
    thumbnail_size = THUMBNAIL_SIZE if thumbnails else None
    predictions: list[Prediction] = []
    for start in range(0, len(paths), batch_size):
        batch, kept, thumbs = [], [], []
        for path in paths[start : start + batch_size]:
            try:
                image, thumb = preprocess.read(path, thumbnail_size, max_pixels)
            except UnreadableImage as err:
                failures.append(Failure(str(path), str(err)))
                continue
            batch.append(preprocess(image[None])[0])  # one at a time: the images differ in size until resized
            del image  # the full-size pixels go before the next image is read
            kept.append(path)
            thumbs.append(thumb)
        if not batch:
            continue
        with torch.no_grad():
            probs = torch.softmax(net(torch.stack(batch).to(dev)).float(), dim=1).cpu()
        top = probs.topk(k, dim=1)
        for path, thumb, values, indices in zip(kept, thumbs, top.values.tolist(), top.indices.tolist(), strict=True):
            truth = path.parent.name if path.parent.name in names else None
            predictions.append(Prediction(str(path), [names[i] for i in indices], values, truth, thumb))
    return PredictResult(predictions, failures)


def plot_predictions(
    predictions: Sequence[Prediction],
    out: str | Path,
    *,
    columns: int = 8,
    max_images: int = 64,
    max_pixels: int | None = None,
) -> Path:
    """A labelled grid: each image with its predicted class and probability under it.

    Where the true label is known (the image's folder is named after a class), a wrong prediction is drawn in red
    with the true class under it, as the textbook marks its mistakes. Each image is drawn from its thumbnail
    (``predict(..., thumbnails=True)``), or else read again and shrunk at once: the grid holds no full-size image.
    ``out`` follows :func:`moderncnn.plotting.figure_path` (a folder gets ``predictions.png``); ``max_pixels``
    is the pixel limit given to :func:`predict`, for images read again.

    Returns:
        The path written.

    Raises:
        OutputError: ``out`` cannot be written (checked before any image is read).
    """
    shown = list(predictions)[:max_images]
    if not shown:
        raise UsageError("no predictions to show")
    out = check_figure_path(out, "predictions.png")
    plt = pyplot()
    cols = min(columns, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 2.0 * rows), squeeze=False)
    try:
        for ax in axes.flat:
            ax.axis("off")
        for ax, pred in zip(axes.flat, shown, strict=False):
            ax.imshow(_thumbnail(pred, max_pixels).permute(1, 2, 0).numpy())  # as on disk, not as the network sees it
            wrong = pred.true_label is not None and pred.true_label != pred.label
            text = f"{pred.label} {pred.prob:.2f}" + (f"\n(true: {pred.true_label})" if wrong else "")
            ax.text(0.5, -0.04, text, transform=ax.transAxes, ha="center", va="top", fontsize=8,
                    color="red" if wrong else "black")  # fmt: skip
    except BaseException:
        plt.close(fig)
        raise
    return save_figure(fig, out, default_name="predictions.png")


def _thumbnail(pred: Prediction, max_pixels: int | None) -> Tensor:
    if pred.thumbnail is not None:
        return pred.thumbnail
    with open_image(pred.path, max_pixels) as im:
        return thumbnail(im, THUMBNAIL_SIZE)
