"""Pictures the page shows, as base64 PNG: the Grad-CAM overlay, feature maps per stage and the first-layer filters.

The maps come from the look-inside code (:mod:`moderncnn.inspect`); here they only become small PNG images in
memory, never files. Run in an inference thread, on the copy of the network kept for explanations.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from moderncnn.serve.model import ServedModel

DISPLAY_SIZE = 320  # longer side of the overlay's image: the page shows it at about that size
STAGE_CHANNELS = 16  # channels drawn per stage: the most active ones, as `moderncnn features` draws them


def png(array: np.ndarray) -> str:
    """A uint8 ``(H, W)`` or ``(H, W, 3)`` array as a base64 PNG."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _colour(values: np.ndarray, colormap: str) -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[colormap](np.nan_to_num(values, nan=1.0))[..., :3] * 255).round().astype(np.uint8)


def overlay(pixels: Tensor, heat: Tensor) -> str:
    """The image under its heat map (``jet``, half transparent, scaled to its largest value), as base64 PNG."""
    from moderncnn.inspect.explain import to_image_size

    image = Image.fromarray(pixels.permute(1, 2, 0).squeeze(-1).numpy()).convert("RGB")
    image.thumbnail((DISPLAY_SIZE, DISPLAY_SIZE))
    width, height = image.size
    heat = to_image_size(heat.abs(), height, width)
    heat = (heat / heat.max().clamp_min(1e-12)).numpy()
    blended = 0.5 * np.asarray(image, dtype=np.float32) + 0.5 * _colour(heat, "jet").astype(np.float32)
    return png(blended.round().astype(np.uint8))


def explain(model: ServedModel, pixels: Tensor, x: Tensor, target: int | None) -> dict:
    """Grad-CAM of one preprocessed input ``x`` ``(C, S, S)`` and a grid of activations per stage.

    Raises:
        UsageError: the model has no PyTorch network, or ``target`` is no class index.
    """
    from moderncnn.inspect import attribute, feature_maps
    from moderncnn.inspect.features import _grid

    net, lock = model.explain_net()
    with lock:
        result = attribute(net, x[None], method="gradcam", target=target)
        maps = feature_maps(net, x[None])
    probs = result.probs[0]
    stages = []
    for name, value in maps.items():
        grid, _ = _grid(value[0].float(), STAGE_CHANNELS)
        stages.append(
            {
                "name": name,
                "shape": list(value.shape[1:]),
                "mean": float(value.mean()),
                "max": float(value.max()),
                "png": png(_colour(grid.numpy(), "viridis")),
            }
        )
    target = result.targets[0]
    return {
        "target": model.class_names[target],
        "target_index": target,
        "probability": float(probs[target]),
        "layer": result.layer,
        "overlay_png": overlay(pixels, result.maps[0]),
        "stages": stages,
    }


def filters(model: ServedModel) -> dict:
    """The first convolution's filters as one grid (see :func:`moderncnn.inspect.filter_tiles`), base64 PNG."""
    from moderncnn.inspect import filter_grid, filter_tiles
    from moderncnn.inspect.filters import conv_weight

    net, lock = model.explain_net()
    with lock:
        layer, weight = conv_weight(net)
    grid = filter_grid(filter_tiles(weight))
    array = (grid.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return {"layer": layer, "shape": list(weight.shape), "png": png(array)}
