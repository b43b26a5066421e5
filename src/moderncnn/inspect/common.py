"""What every picture of a network needs: the run's network, its input images, and layers found by name.

A run is loaded in one place (:func:`load`), so a change of loader is a one-line change. Images go through the
run's own preprocessing (:meth:`RunInfo.preprocess <moderncnn.run.checkpoint.RunInfo.preprocess>`), as in
``predict``.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from moderncnn.data.image import UnreadableImage
from moderncnn.errors import DataError, ModelError
from moderncnn.run.checkpoint import RunInfo, load_run

# A module whose output is no longer a map: a layer that contains one cannot be a spatial target.
_COLLAPSING = (nn.Flatten, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def load(run_or_ckpt: str | Path, checkpoint: str = "best") -> tuple[nn.Module, RunInfo]:
    """The network of a run (eval mode, CPU) and its :class:`~moderncnn.run.checkpoint.RunInfo`."""
    net, info = load_run(run_or_ckpt, checkpoint)
    return net, info


def read_image(path: str | Path, info: RunInfo) -> tuple[Tensor, Tensor]:
    """An image file as the network reads it: ``(pixels, input)``, uint8 ``(C, H, W)`` and float ``(C, S, S)``.

    Raises:
        DataError: the file is missing. UnreadableImage: it cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no image file at {path}; give the path of a PNG, JPEG or other image file")
    preprocess = info.preprocess()
    try:
        pixels, _ = preprocess.read(path)
    except UnreadableImage as err:
        raise UnreadableImage(f"{err.reason}; give an image file PIL can read", path) from None
    return pixels, preprocess(pixels[None])[0]


def model_name(net: nn.Module) -> str:
    """The registry name of a network built by ``create_model``, else its class name."""
    info = getattr(net, "info", None)
    return info.name if info is not None else type(net).__name__


def find_layer(net: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (dotted, as in ``named_modules``); a clear error naming the choices if none."""
    try:
        return net.get_submodule(name)
    except AttributeError:
        top = ", ".join(n for n, _ in net.named_children())
        raise ModelError(
            f"{model_name(net)} has no layer {name!r}; its top-level layers are {top} (dotted names reach inside, "
            "e.g. layer4.1; `moderncnn features RUN --list` lists every layer)"
        ) from None


def default_layer(net: nn.Module) -> str:
    """The layer attributions target by default: the last convolutional stage.

    The registry's ``feature_layer`` when the network's info has one. Otherwise the rule: the last top-level child
    that contains a ``Conv2d``; when that child also pools its maps away (a global pooling or a ``Flatten`` inside,
    as the textbook GoogLeNet's last block), the same rule inside it.
    """
    name = getattr(getattr(net, "info", None), "feature_layer", None)
    return name or _last_conv_stage(net, "")


def _last_conv_stage(module: nn.Module, prefix: str) -> str:
    for name, child in reversed(list(module.named_children())):
        if not any(isinstance(m, nn.Conv2d) for m in child.modules()):
            continue
        if any(isinstance(m, _COLLAPSING) for m in child.modules()) and any(True for _ in child.children()):
            return _last_conv_stage(child, f"{prefix}{name}.")
        return f"{prefix}{name}"
    raise ModelError(f"{model_name(module)} has no convolution to look at; name a layer explicitly")
