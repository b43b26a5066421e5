"""Trained weights you can use at once: our own, published with a model card each.

>>> import moderncnn as mc
>>> mc.list_weights()                                   # doctest: +SKIP
['lenet_bn-digits', ...]
>>> net = mc.create_model("lenet_bn", pretrained="digits")   # doctest: +SKIP

Files are safetensors (never pickle), checked against the table's SHA-256 on every load; the preprocessing they
need is in the table (:class:`WeightsInfo`). Every command that takes a RUN takes ``weights:<network>-<dataset>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moderncnn.errors import CheckpointError, ModelError
from moderncnn.weights.store import OfflineError, download, read_verified, weights_home
from moderncnn.weights.table import (
    PREFIX,
    WeightsInfo,
    get_weights_info,
    list_weights,
    table,
    weights_for,
    weights_name,
)

if TYPE_CHECKING:  # importing this package (the CLI's `weights` listing) does not load torch
    from torch import Tensor, nn

__all__ = [
    "PREFIX",
    "OfflineError",
    "WeightsInfo",
    "create_pretrained",
    "download",
    "get_weights_info",
    "list_weights",
    "load_network",
    "load_state_dict",
    "table",
    "weights_for",
    "weights_home",
    "weights_name",
]


def load_state_dict(info: WeightsInfo | str, *, progress: bool = True) -> dict[str, Tensor]:
    """The tensors of a weight (as stored: half-precision files stay half), after the SHA-256 check.

    Raises:
        CheckpointError: a file whose checksum differs from the table's, or that is no safetensors file.
        OfflineError: a file that is not here and cannot be downloaded.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    info = get_weights_info(info) if isinstance(info, str) else info
    data, path = read_verified(info, progress=progress)
    try:
        return load(data)
    except (SafetensorError, ValueError) as err:
        raise CheckpointError(f"refusing {path}: not a safetensors file ({err})") from None


def load_network(info: WeightsInfo | str, *, progress: bool = True) -> nn.Module:
    """The weight's network in eval mode, in float32 on the CPU, with every tensor loaded (``strict=True``)."""
    import moderncnn.models  # noqa: F401  (the networks register themselves)
    from moderncnn.models._registry import create_model

    info = get_weights_info(info) if isinstance(info, str) else info
    net = create_model(info.network, num_classes=info.num_classes, in_channels=info.in_channels, **info.model_kwargs)
    state = load_state_dict(info, progress=progress)
    own = net.state_dict()
    if set(own) != set(state) or any(own[k].shape != state[k].shape for k in own):
        raise CheckpointError(f"the weights of {info.name} do not fit {info.network} built as the table says")
    net.load_state_dict(state, strict=True)  # copies into the float32 parameters: half files come back as float32
    return net.eval()


def create_pretrained(network: str, dataset: str, num_classes: int | None = None, in_channels: int | None = None,
                      **kwargs) -> nn.Module:  # fmt: skip
    """``network`` with our weights trained on ``dataset`` (``mc.create_model(network, pretrained=dataset)``).

    With the weight's own class count and channels, every tensor is loaded. Another ``num_classes`` keeps a freshly
    initialised classifier (fine-tuning); ``in_channels=1`` for a 3-channel weight sums the first convolution's
    filters over RGB. The network is returned in train mode, as ``create_model`` returns any network.
    """
    import moderncnn.models  # noqa: F401  (the networks register themselves)
    from moderncnn.models._registry import create_model
    from moderncnn.models.pretrained import fit_state_dict

    info = weights_for(network, dataset)
    options = {**info.model_kwargs, **kwargs}
    if options != info.model_kwargs:
        changed = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if info.model_kwargs.get(k) != v)
        raise ModelError(f"{info.name} was trained with {info.model_kwargs or 'no options'}; {changed} cannot load it")
    if num_classes in (None, info.num_classes) and in_channels in (None, info.in_channels):
        return load_network(info).train()
    net = create_model(
        network,
        num_classes=num_classes or info.num_classes,
        in_channels=in_channels or info.in_channels,
        **options,
    )
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_state_dict(info).items()}
    fit_state_dict(net, network, state, f"weights:{info.name}")
    return net
