"""Pretrained weights for the torchvision-variant networks, adapted to the task at hand.

The torchvision networks share torchvision's module names, so its ImageNet weights load as they are. Two
adaptations make them useful on other data: a classifier for another number of classes is kept as freshly
initialised (only the backbone is transferred), and a 1-channel network takes the first convolution's RGB
filters summed over the colour channels (a grey image seen as R = G = B gives the same response).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from moderncnn.errors import ModelError
from moderncnn.models._registry import get_model_info

IMAGENET = "imagenet"
# Parts of a torchvision network that ours may be built without: GoogLeNet's and Inception-v3's auxiliary classifiers.
OPTIONAL_HEADS = ("aux1", "aux2", "AuxLogits")


@dataclass
class PretrainedReport:
    """What :func:`load_pretrained` did."""

    source: str
    loaded: int
    new_classifier: bool
    summed_first_conv: bool

    def __str__(self) -> str:
        notes = []
        if self.new_classifier:
            notes.append("new classifier for this class count")
        if self.summed_first_conv:
            notes.append("first convolution summed over RGB for 1-channel input")
        return f"loaded {self.loaded} tensors from {self.source}" + (f" ({'; '.join(notes)})" if notes else "")


def supports_pretrained(name: str) -> bool:
    """Whether torchvision publishes weights for network ``name`` (the torchvision-variant networks)."""
    import torchvision

    return get_model_info(name).variant == "torchvision" and name in torchvision.models.list_models()


def pretrained_state_dict(name: str, source: str) -> dict[str, torch.Tensor]:
    """The weights of ``source``: ``"imagenet"`` (torchvision's default weights for ``name``, downloaded once into
    torch's cache) or the path of a ``.pth`` file holding a state dict (read with ``weights_only=True``)."""
    if source == IMAGENET:
        if not supports_pretrained(name):
            raise ModelError(
                f"torchvision has no ImageNet weights for {name}; pretrained weights exist for the torchvision "
                "networks (alexnet, vgg*, googlenet, inception_v3, resnet18-152, densenet121-201)"
            )
        import torchvision

        weights = torchvision.models.get_model_weights(name).DEFAULT
        try:
            return weights.get_state_dict(progress=False, check_hash=True)
        except Exception as err:  # no network, a proxy, a truncated download
            raise ModelError(
                f"cannot get torchvision's ImageNet weights for {name} ({type(err).__name__}: {err}); download "
                f"{weights.url} on a machine with network and pass --pretrained PATH_TO_THAT_FILE"
            ) from None
    path = Path(source).expanduser()
    if not path.is_file():
        raise ModelError(f"no weights file at {path}; give a .pth state dict, or 'imagenet' for torchvision's weights")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelError(f"refusing {path}: not a plain state dict of tensors ({type(err).__name__})") from None
    for key in ("state_dict", "model"):  # common wrappers around a state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a state dict (names → tensors)")
    return state


def load_pretrained(model: nn.Module, name: str, source: str) -> PretrainedReport:
    """Load ``source``'s weights (see :func:`pretrained_state_dict`) into ``model``, the registry's ``name``.

    Every tensor of ``model`` must be in the weights with the same shape, except the classifier (kept as
    initialised when the class count differs) and the first convolution (summed over RGB for 1-channel input).
    Weights of parts ``model`` lacks (GoogLeNet's auxiliary heads when they are off) are ignored.
    """
    state = pretrained_state_dict(name, source)
    label = f"torchvision's ImageNet weights for {name}" if source == IMAGENET else str(source)
    return fit_state_dict(model, name, state, label)


def fit_state_dict(model: nn.Module, name: str, state: dict[str, torch.Tensor], label: str) -> PretrainedReport:
    """Load ``state`` into ``model`` (the registry's ``name``), adapted as :func:`load_pretrained` describes;
    ``label`` names the weights in errors and the report."""
    own = model.state_dict()
    classifier = get_model_info(name).classifier
    first_conv = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    adapted: dict[str, torch.Tensor] = {}
    new_classifier = summed = False
    problems = []
    for key, mine in own.items():
        theirs = state.get(key)
        if theirs is None:
            problems.append(f"{key} missing")
        elif theirs.shape == mine.shape:
            adapted[key] = theirs
        elif key.startswith(classifier + "."):
            new_classifier = True  # another class count: this layer starts from its initialisation
        elif key == f"{first_conv}.weight" and mine.shape[1] == 1 and theirs.shape[1] == 3:
            adapted[key] = theirs.sum(dim=1, keepdim=True)
            summed = True
        else:
            problems.append(f"{key} {tuple(theirs.shape)} vs {tuple(mine.shape)}")
    # Tensors the network has no place for mean another network, except heads it was built without.
    problems += [f"{key} unexpected" for key in state if key not in own and key.split(".")[0] not in OPTIONAL_HEADS]
    if problems:
        shown = ", ".join(problems[:3]) + (", ..." if len(problems) > 3 else "")
        raise ModelError(f"the weights from {label} do not fit {name}: {len(problems)} tensors ({shown})")
    model.load_state_dict(adapted, strict=False)
    return PretrainedReport(label, len(adapted), new_classifier, summed)


def backbone_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    """Every parameter but the classifier's (what ``--freeze-backbone`` freezes)."""
    classifier = get_model_info(name).classifier
    return [p for n, p in model.named_parameters() if not n.startswith(classifier + ".")]
