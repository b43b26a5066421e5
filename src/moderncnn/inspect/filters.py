"""The learned filters of a convolution as an image grid, one tile per output channel (AlexNet's famous figure).

A filter over 3 input channels is shown as an RGB tile, one over 1 channel as a grey tile, each scaled on its own
from its smallest to its largest weight (what matters is the pattern, not the magnitude). A filter over any other
number of input channels (a deeper layer) is shown as the mean of its kernels over those channels, in grey.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from moderncnn.errors import ModelError
from moderncnn.inspect.common import find_layer, load, model_name
from moderncnn.plotting import pyplot, save_figure

PADDING = 1  # pixels of white between tiles


@dataclass
class FilterPlot:
    """What :func:`plot_filters` drew: the layer, its weight shape, the tiles ``(N, C, k, k)`` and the file."""

    path: Path
    layer: str
    shape: tuple[int, ...]
    tiles: Tensor


def first_conv(net: nn.Module) -> str:
    """Dotted name of the network's first ``Conv2d`` (in definition order)."""
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    raise ModelError(f"{model_name(net)} has no Conv2d layer")


def conv_weight(net: nn.Module, layer: str | None = None) -> tuple[str, Tensor]:
    """``(name, weight)`` of the convolution ``layer`` (default: the first), weight ``(out, in, kh, kw)``."""
    name = layer or first_conv(net)
    module = find_layer(net, name)
    if not isinstance(module, nn.Conv2d):
        convs = [n for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]
        shown = ", ".join(convs[:8]) + (", ..." if len(convs) > 8 else "")
        raise ModelError(f"{name} is a {type(module).__name__}, not a Conv2d; convolutions of this network: {shown}")
    return name, module.weight.detach().float().cpu()


def filter_tiles(weight: Tensor) -> Tensor:
    """One tile per output channel, ``(out, C, kh, kw)`` in [0, 1], ``C`` 3 for RGB input and 1 otherwise.

    Each tile is scaled on its own, from its smallest weight (0) to its largest (1); a constant filter is 0.5.
    """
    if weight.dim() != 4:
        raise ModelError(f"a convolution weight is (out, in, kh, kw); got shape {tuple(weight.shape)}")
    tiles = weight if weight.shape[1] in (1, 3) else weight.mean(dim=1, keepdim=True)
    flat = tiles.flatten(1)
    low, high = flat.min(dim=1).values, flat.max(dim=1).values
    span = (high - low).clamp_min(1e-12)[:, None, None, None]
    scaled = (tiles - low[:, None, None, None]) / span
    return torch.where((high > low)[:, None, None, None], scaled, torch.full_like(tiles, 0.5))


def filter_grid(tiles: Tensor, columns: int | None = None) -> Tensor:
    """The tiles in rows of ``columns`` (default: about square) on white, as one ``(3, H, W)`` image."""
    from torchvision.utils import make_grid

    columns = columns or max(1, round(len(tiles) ** 0.5))
    return make_grid(tiles, nrow=columns, padding=PADDING, pad_value=1.0)


def plot_filters(net: nn.Module, out: str | Path, *, layer: str | None = None) -> FilterPlot:
    """Write the filters of ``layer`` (default: the first convolution) as a grid titled with the layer and shape."""
    name, weight = conv_weight(net, layer)
    tiles = filter_tiles(weight)
    grid = filter_grid(tiles)
    plt = pyplot()
    height, width = grid.shape[1:]
    scale = 6 / max(height, width)
    fig, ax = plt.subplots(figsize=(max(3.0, width * scale), max(3.0, height * scale) + 0.5))
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.axis("off")
    shown = "RGB" if tiles.shape[1] == 3 else ("grey" if weight.shape[1] == 1 else f"mean of {weight.shape[1]} inputs")
    ax.set_title(f"{model_name(net)} {name}: {weight.shape[0]} filters, weight {tuple(weight.shape)} ({shown})")
    return FilterPlot(save_figure(fig, out), name, tuple(weight.shape), tiles)


def plot_run_filters(
    run_or_ckpt: str | Path, out: str | Path, *, layer: str | None = None, checkpoint: str = "best"
) -> FilterPlot:
    """:func:`plot_filters` for a trained run (a run directory or a ``.ckpt`` file)."""
    net, _ = load(run_or_ckpt, checkpoint)
    return plot_filters(net, out, layer=layer)
