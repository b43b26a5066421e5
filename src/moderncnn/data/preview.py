"""A labelled grid of a dataset's images, optionally each beside augmented versions of itself."""

from __future__ import annotations

from pathlib import Path

import torch

from moderncnn.data.augment import BatchAugment
from moderncnn.data.base import Dataset, Split
from moderncnn.errors import UsageError
from moderncnn.plotting import check_figure_path, pyplot, save_figure

# More rows than this make a figure too tall to read (and to draw: 1,000 images are a 20,000 px tall PNG).
MAX_COUNT = 256


def preview_grid(
    dataset: Dataset,
    out: str | Path,
    *,
    split: str = "train",
    count: int = 8,
    augment: str | None = None,
    versions: int = 5,
    resize: int | None = None,
    seed: int = 0,
) -> Path:
    """Write a PNG of ``count`` images from ``split`` with their class names.

    Args:
        out: the image file; an existing folder, or a path ending in ``/``, gets ``preview.png`` inside; a name
            without an image extension gets ``.png`` (:func:`moderncnn.plotting.figure_path`).
        count: images shown, 1 to ``MAX_COUNT`` (fewer when the split is smaller).
        augment: a preset name: then each image gets a row, followed by ``versions`` augmented copies.
        resize: resize setting passed to the augmentation (the ``d2l`` preset needs one).

    Returns:
        The path written (as resolved from ``out``).

    Raises:
        UsageError: a bad ``count`` or ``split``. OutputError: ``out`` cannot be written (checked first).
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise UsageError(f"count must be a number of images from 1 to {MAX_COUNT}, got {count!r}")
    if split not in dataset.splits:
        raise UsageError(f"{dataset.name} has no {split!r} split; it has {', '.join(dataset.splits)}")
    out = check_figure_path(out, "preview.png")
    plt = pyplot()

    data = dataset.splits[split]
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(data), generator=generator)[:count]
    if isinstance(data, Split):
        images, labels = data.images[picks], data.labels[picks]
    else:  # an image folder: decode the picks, at one size so they stack
        size = resize or 64
        items = [data[i] for i in picks.tolist()]
        images = torch.stack([torch.nn.functional.interpolate(x[None].float(), size=(size, size))[0] for x, _ in items])
        images, labels = images.round().to(torch.uint8), torch.tensor([y for _, y in items])

    columns = [images.float() / 255]
    if augment is not None:
        # mean 0 / std 1: keep pixels in [0, 1] for display.
        channels = images.shape[1]
        aug = BatchAugment(augment, mean=[0.0] * channels, std=[1.0] * channels, resize=resize, generator=generator)
        if resize is not None:
            columns[0] = torch.nn.functional.interpolate(columns[0], size=(resize, resize), mode="bilinear")
        columns += [aug(images) for _ in range(versions)]
    rows, cols = (len(images), len(columns)) if augment else (-(-len(images) // 8), min(8, len(images)))

    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(len(images)):
        for j, column in enumerate(columns):
            ax = axes[i, j] if augment else axes.flat[i]
            picture = column[i].clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(picture.squeeze(-1) if picture.shape[-1] == 1 else picture, cmap="gray", vmin=0, vmax=1)
            if j == 0:
                ax.set_title(dataset.classes[int(labels[i])], fontsize=8)
            elif i == 0:
                ax.set_title(f"{augment} #{j}", fontsize=8)
    fig.suptitle(f"{dataset.name} ({split})" + (f", augmentation '{augment}'" if augment else ""), fontsize=10)
    return save_figure(fig, out, default_name="preview.png")
