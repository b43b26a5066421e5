"""``explain_images(run, images, out_dir)``: an attribution overlay per image file, and the raw maps for programs.

Each image is read and preprocessed as ``moderncnn predict`` does; its map (see :mod:`.attribution`) is resized
from the network's input to the file's own height and width (the preprocessing resizes the whole image, so the
two line up), drawn over the image, and optionally saved as ``.npy`` (float32, H x W) beside the overlay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from torch import Tensor
from torch.nn import functional as F

from moderncnn.data.image import UnreadableImage
from moderncnn.errors import DataError, UsageError
from moderncnn.files import atomic_path, ensure_writable
from moderncnn.inspect.attribution import IG_STEPS, Attribution, attribute
from moderncnn.inspect.common import load
from moderncnn.plotting import pyplot, save_figure


@dataclass
class Explanation:
    """One image's explanation: the prediction, the class explained and the files written."""

    path: str
    label: str
    prob: float
    target: str
    true_label: str | None
    overlay: Path
    map_path: Path | None = None
    delta: float | None = None

    @property
    def wrong(self) -> bool:
        return self.true_label is not None and self.true_label != self.label


class ExplainResult(NamedTuple):
    """What :func:`explain_images` returns; unpacks as ``explanations, failures = explain_images(...)``."""

    explanations: list[Explanation]
    failures: list  # of moderncnn.deploy.predict.Failure: files that could not be read, and why


def resolve_target(target: str | int | None, class_names: Sequence[str]) -> int | None:
    """A class given by name or index as its index; ``None`` stays ``None`` (explain the prediction)."""
    if target is None:
        return None
    if str(target) in class_names:
        return list(class_names).index(str(target))
    if str(target).isdigit() and int(target) < len(class_names):
        return int(target)
    raise UsageError(f"unknown class {target!r}; the run's classes are {', '.join(class_names)} (or their index)")


def file_stems(paths: Sequence[Path]) -> list[str]:
    """A distinct output name per image: its stem, prefixed by its folder's name (then a number) where stems repeat."""
    stems = [p.stem for p in paths]
    names: list[str] = []
    for path, stem in zip(paths, stems, strict=True):
        name = stem if stems.count(stem) == 1 else f"{path.parent.name}_{stem}"
        while name in names:
            name = f"{name}_{len(names)}"
        names.append(name)
    return names


def to_image_size(single: Tensor, height: int, width: int) -> Tensor:
    """A map ``(S, S)`` at the network's input, resized (bilinear) to the image's ``(height, width)``."""
    return F.interpolate(single[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]


def plot_overlay(pixels: Tensor, heat: Tensor, out: str | Path, *, title: str, wrong: bool = False) -> Path:
    """The image and the image under its heat map (absolute values, scaled to the largest), side by side."""
    plt = pyplot()
    image = pixels.permute(1, 2, 0).squeeze(-1).numpy()
    shown = heat.abs() / heat.abs().max().clamp_min(1e-12)
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.6))
    for ax in axes:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.axis("off")
    axes[1].imshow(shown.numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1)
    fig.suptitle(title, color="red" if wrong else "black", fontsize=10)
    return save_figure(fig, out)


def explain_images(
    run_or_ckpt: str | Path,
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    method: str = "gradcam",
    target: str | int | None = None,
    layer: str | None = None,
    save_maps: bool = False,
    checkpoint: str = "best",
    ig_steps: int = IG_STEPS,
) -> ExplainResult:
    """Write ``OUT_DIR/<image>_<method>.png`` (and ``.npy`` with ``save_maps``) for each image file.

    Args:
        run_or_ckpt: a run directory or a ``.ckpt`` file.
        inputs: image files and/or folders (searched recursively), as for ``moderncnn predict``.
        out_dir: the folder to write into (created).
        method: one of ``attribution.METHODS``.
        target: the class to explain (name or index); default each image's predicted class.
        layer: the layer of the CAM methods (default: the network's last convolutional stage).
        save_maps: also write each raw map as ``.npy``, float32 of the image's height and width.
        checkpoint: ``best`` or ``last`` for a run directory.
        ig_steps: steps of integrated gradients.

    Returns:
        ``(explanations, failures)``: files that could not be read are failures, the others are explained.

    Raises:
        DataError: no image file among ``inputs``. UsageError: a bad method, class or layer.
    """
    from moderncnn.deploy.predict import Failure, find_images

    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    net, info = load(run_or_ckpt, checkpoint)
    names = info.class_names
    target_index = resolve_target(target, names)
    paths, failures = find_images(inputs)
    if not paths:
        raise DataError(f"no image files in {', '.join(map(str, inputs))}; give image files or folders of them")
    out_dir = ensure_writable(out_dir, folder=True)  # before any work; never a run's checkpoints or logs
    slug = method.replace("+", "p")
    explanations = []
    preprocess = info.preprocess()
    for path, stem in zip(paths, file_stems(paths), strict=True):
        try:
            pixels, _ = preprocess.read(path)
        except UnreadableImage as err:
            failures.append(Failure(str(path), str(err)))
            continue
        result: Attribution = attribute(
            net, preprocess(pixels[None]), method=method, target=target_index, layer=layer, ig_steps=ig_steps
        )
        heat = to_image_size(result.maps[0], *pixels.shape[1:])
        predicted = int(result.probs[0].argmax())
        truth = path.parent.name if path.parent.name in names else None
        label, explained = names[predicted], names[result.targets[0]]
        title = f"{label} {float(result.probs[0, predicted]):.2f}"
        if truth is not None and truth != label:
            title += f" (true: {truth})"
        where = f" at {result.layer}" if result.layer else ""
        title += f"\n{method}{where} for {explained}"
        overlay = plot_overlay(
            pixels, heat, out_dir / f"{stem}_{slug}.png", title=title, wrong=truth not in (None, label)
        )
        map_path = None
        if save_maps:
            map_path = out_dir / f"{stem}_{slug}.npy"
            with atomic_path(map_path, sync=False) as tmp:
                np.save(tmp, heat.numpy().astype(np.float32))
        delta = float(result.delta[0]) if result.delta is not None else None
        prob = float(result.probs[0, predicted])
        explanations.append(Explanation(str(path), label, prob, explained, truth, overlay, map_path, delta))
    return ExplainResult(explanations, failures)
