"""What each stage of a network makes of one image: its activations as grids of channels.

Activations are read through ``torchvision.models.feature_extraction`` (the network is traced with ``torch.fx``
and cut at the requested nodes), so no hooks are left on the network and any node of the graph can be asked for.
A node is named by its module path (``layer2``, ``layer2.0.conv1``, ``features.denseblock1``); a module's own name
stands for the last operation inside it, i.e. the module's output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from moderncnn.errors import ModelError
from moderncnn.inspect.common import load, model_name, read_image
from moderncnn.plotting import pyplot, save_figure

MAX_CHANNELS = 16  # channels drawn per layer: the most active ones


@dataclass
class FeaturePlot:
    """What :func:`plot_feature_maps` drew: the file and each layer's activation shape ``(C, H, W)``."""

    path: Path
    shapes: dict[str, tuple[int, ...]]


def layer_names(net: nn.Module) -> list[str]:
    """Every node of the network's graph in evaluation mode, in execution order (``get_graph_node_names``)."""
    from torchvision.models.feature_extraction import get_graph_node_names

    return get_graph_node_names(net)[1]


def _extractor(net: nn.Module, layers: Sequence[str]) -> nn.Module:
    from torchvision.models.feature_extraction import create_feature_extractor

    nodes = layer_names(net)
    unknown = [n for n in layers if not any(node == n or node.startswith(f"{n}.") for node in nodes)]
    if unknown:
        raise ModelError(
            f"{model_name(net)} has no layer {', '.join(map(repr, unknown))}; `moderncnn features RUN --list` "
            f"lists its {len(nodes)} layer names (e.g. {', '.join(nodes[1:4])})"
        )
    return create_feature_extractor(net.eval(), return_nodes=list(layers))


def stages(net: nn.Module, x: Tensor) -> list[str]:
    """The top-level children of the network that run and output maps ``(N, C, H, W)``, larger than 1x1, for ``x``."""
    nodes = layer_names(net)
    names = [
        name
        for name, _ in net.named_children()
        if any(
            node == name or node.startswith(f"{name}.") for node in nodes
        )  # a module forward never calls is no stage
    ]
    with torch.no_grad():
        out = _extractor(net, names)(x)
    return [name for name in names if out[name].dim() == 4 and out[name].shape[2:].numel() > 1]


def feature_maps(net: nn.Module, x: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The activations of ``layers`` (default: :func:`stages`) for the input batch ``x``, in that order."""
    layers = list(layers) if layers else stages(net, x)
    with torch.no_grad():
        out = _extractor(net, layers)(x)
    return {name: out[name] for name in layers}


def _grid(maps: Tensor, count: int) -> tuple[Tensor, list[int]]:
    """The ``count`` channels of ``maps`` ``(C, H, W)`` with the largest mean, each scaled to [0, 1], as one image."""
    from torchvision.utils import make_grid

    order = maps.flatten(1).mean(dim=1).argsort(descending=True)[:count].tolist()
    chosen = maps[order]
    low = chosen.flatten(1).min(dim=1).values[:, None, None]
    high = chosen.flatten(1).max(dim=1).values[:, None, None]
    scaled = (chosen - low) / (high - low).clamp_min(1e-12)
    # NaN between the tiles: drawn in the colour map's "bad" colour (white), apart from any activation.
    return make_grid(scaled[:, None], nrow=min(8, len(order)), padding=1, pad_value=float("nan"))[0], order


def plot_feature_maps(
    maps: dict[str, Tensor], out: str | Path, *, image: Tensor | None = None, title: str = ""
) -> FeaturePlot:
    """One row per layer: its :data:`MAX_CHANNELS` most active channels of the first image, each on its own scale.

    Args:
        maps: layer name → activations ``(N, C, H, W)``, as :func:`feature_maps` returns them.
        out: the PNG to write.
        image: the input as pixels ``(C, H, W)`` (uint8 or in [0, 1]), drawn first.
        title: the figure's title.
    """
    plt = pyplot()
    cmap = plt.get_cmap("viridis").with_extremes(bad="white")
    spatial = {name: m[0] for name, m in maps.items() if m.dim() == 4}
    rows = len(spatial) + (image is not None)
    if rows == 0:
        raise ModelError(f"none of {', '.join(maps)} outputs maps (N, C, H, W); choose convolutional layers")
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2.1 * rows), squeeze=False)
    axes = list(axes[:, 0])
    if image is not None:
        ax = axes.pop(0)
        pixels = image.float() / (255 if image.dtype == torch.uint8 else 1)
        ax.imshow(pixels.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title("input")
        ax.axis("off")
    for ax, (name, m) in zip(axes, spatial.items(), strict=True):
        grid, order = _grid(m.float().cpu(), MAX_CHANNELS)
        ax.imshow(grid.numpy(), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        shown = f"{len(order)} most active of {m.shape[0]} channels" if len(order) < m.shape[0] else "all channels"
        ax.set_title(f"{name}: {m.shape[0]}x{m.shape[1]}x{m.shape[2]} ({shown})", fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return FeaturePlot(save_figure(fig, out), {name: tuple(m.shape) for name, m in spatial.items()})


def run_layer_names(run_or_ckpt: str | Path, checkpoint: str = "best") -> list[str]:
    """:func:`layer_names` of a trained run's network."""
    net, _ = load(run_or_ckpt, checkpoint)
    return layer_names(net)


def plot_run_features(
    run_or_ckpt: str | Path,
    image: str | Path,
    out: str | Path,
    *,
    layers: Sequence[str] | None = None,
    checkpoint: str = "best",
) -> FeaturePlot:
    """The activations of a trained run's network for one image file, preprocessed as in evaluation."""
    net, info = load(run_or_ckpt, checkpoint)
    pixels, x = read_image(image, info)
    maps = feature_maps(net, x[None], layers)
    return plot_feature_maps(maps, out, image=pixels, title=f"{model_name(net)} on {Path(image).name}")
