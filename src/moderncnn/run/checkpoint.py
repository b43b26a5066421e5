"""Reading runs back: one safe checkpoint reader, the typed description of a trained network, and its loader.

Everything that uses a trained network (evaluate, predict, export, inspect, serve, the demo) loads it through
:func:`load_run`, which also takes a published weight, ``weights:<network>-<dataset>`` (the weights table gives the
settings and preprocessing a checkpoint holds). It refuses what it cannot trust in one sentence: an empty, truncated
or corrupt file, a file holding Python objects beyond tensors (``torch.load(weights_only=True)`` never runs code
from it), weights that do not fit the settings inside the checkpoint, and a checkpoint whose network differs from
its run's ``config.yaml``.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from moderncnn.constants import CHECKPOINTS
from moderncnn.errors import CheckpointError, UsageError
from moderncnn.registry import create_model, get_model_info
from moderncnn.run.config import TrainConfig
from moderncnn.run.preprocess import Preprocess
from moderncnn.rundir import RunDir
from moderncnn.weights import WeightsInfo, get_weights_info, load_network, weights_name


def build_network(config: TrainConfig, num_classes: int, in_channels: int, input_size: int) -> nn.Module:
    """``config.model`` for this data (:func:`create_network` with the config's options)."""
    return create_network(
        config.model, num_classes, in_channels, input_size, config.model_kwargs, config.bn_momentum, config.bn_eps
    )


def create_network(
    model: str,
    num_classes: int,
    in_channels: int,
    input_size: int,
    model_kwargs: dict | None = None,
    bn_momentum: float | None = None,
    bn_eps: float | None = None,
) -> nn.Module:
    """``model`` for this data: a network whose classifier is sized for one input size (the textbook's flattening
    networks) is built for the size the images actually have, unless ``model_kwargs`` fixes it."""
    kwargs = dict(model_kwargs or {})
    if get_model_info(model).fixed_input_size:
        kwargs.setdefault("input_size", input_size)
    net = create_model(model, num_classes=num_classes, in_channels=in_channels, **kwargs)
    override_batchnorm(net, bn_momentum, bn_eps)
    return net


def override_batchnorm(net: nn.Module, momentum: float | None, eps: float | None) -> None:
    """Set every BatchNorm layer's momentum and/or epsilon (``None``: keep the network's own)."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if momentum is not None:
                m.momentum = momentum
            if eps is not None:
                m.eps = eps


def load_checkpoint(path: str | Path) -> dict:
    """Read one of our checkpoints without executing anything from it (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); it was cut off while being written")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise CheckpointError(
                f"refusing {path}: not a plain moderncnn checkpoint (it holds Python objects beyond tensors and plain "
                "types, which could run code); it may be tampered with or come from another program"
            ) from None
        raise CheckpointError(f"checkpoint {path} is corrupt (not a file torch.save wrote: {err})") from None
    except Exception as err:
        # torch.save writes a zip archive whose directory comes last: a file cut short has none.
        if zipfile.is_zipfile(path) is False and path.read_bytes()[:2] == b"PK":
            raise CheckpointError(f"checkpoint {path} is truncated (its archive ends early)") from None
        raise CheckpointError(f"checkpoint {path} is corrupt ({type(err).__name__})") from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not isinstance(hparams.get("config"), dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"refusing {path}: it is not a moderncnn training checkpoint (no model settings inside)")
    return checkpoint


@dataclass
class RunInfo:
    """What a trained network needs around it: its settings, classes and preprocessing.

    Attributes:
        config: the run's settings.
        num_classes: number of logits.
        in_channels: image channels the network takes (1 or 3).
        class_names: name of each logit's class.
        mean, std: per-channel normalisation of images scaled to [0, 1].
        input_size: side of the square images the network was trained on.
        checkpoint: the file it was read from.
        weights: the weights table's entry, when it is a published weight rather than a run.
    """

    config: TrainConfig
    num_classes: int
    in_channels: int
    class_names: list[str]
    mean: list[float]
    std: list[float]
    input_size: int
    checkpoint: Path
    weights: WeightsInfo | None = None

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.input_size, self.input_size)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, path: Path) -> RunInfo:
        hparams = checkpoint["hyper_parameters"]
        try:
            config = TrainConfig.from_dict(hparams["config"])
            return cls(
                config,
                int(hparams["num_classes"]),
                int(hparams["in_channels"]),
                list(hparams["class_names"]),
                list(hparams["mean"]),
                list(hparams["std"]),
                int(hparams["input_size"]),
                path,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"refusing {path}: its settings are incomplete or malformed ({err})") from None

    def preprocess(self) -> Preprocess:
        """What an image goes through before this network: the one input pipeline of ``predict``, ``serve``,
        ``inspect`` and ``evaluate``."""
        return Preprocess.of(self.in_channels, self.input_size, self.mean, self.std)

    def build(self) -> nn.Module:
        """A freshly initialised network of this run's architecture."""
        return build_network(self.config, self.num_classes, self.in_channels, self.input_size)


class LoadedRun(NamedTuple):
    """A trained network in eval mode on the CPU, with its :class:`RunInfo`."""

    net: nn.Module
    info: RunInfo


def checkpoint_path(run_or_ckpt: str | Path, checkpoint: str = "best") -> Path | str:
    """``RUN/checkpoints/<checkpoint>.ckpt`` for a run directory, or the path itself for a checkpoint file; a
    published weight's ``weights:NAME`` as it is, once the name is known to the table."""
    if checkpoint not in CHECKPOINTS:
        raise UsageError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    name = weights_name(run_or_ckpt)
    if name is not None:
        get_weights_info(name)  # an unknown name fails here, before the work starts
        return str(run_or_ckpt)
    path = Path(run_or_ckpt)
    if path.is_dir():
        ckpt = RunDir(path).checkpoint(checkpoint)
        if not ckpt.is_file():
            raise CheckpointError(f"{path} has no checkpoints/{checkpoint}.ckpt (is it a run directory?)")
        return ckpt
    if not path.exists():
        raise CheckpointError(f"no run directory or checkpoint at {path}")
    return path


def load_run(run_or_ckpt: str | Path, checkpoint: str = "best") -> LoadedRun:
    """The network of a run directory (its ``best`` or ``last`` checkpoint), of a checkpoint file, or of a
    published weight (``weights:<network>-<dataset>``)."""
    name = weights_name(run_or_ckpt)
    if name is not None:
        return load_published(name)
    path = checkpoint_path(run_or_ckpt, checkpoint)
    raw = load_checkpoint(path)
    info = RunInfo.from_checkpoint(raw, path)
    check_config_matches(path, info.config.model)
    net = info.build()
    prefix = "net."
    state = {k[len(prefix) :]: v for k, v in raw["state_dict"].items() if k.startswith(prefix)}
    load_weights(net, state, path, info.model)
    return LoadedRun(net.eval(), info)


def load_published(name: str) -> LoadedRun:
    """A published weight as a trained run: the network, and its settings and preprocessing from the table."""
    weights = get_weights_info(name)
    net = load_network(weights)
    config = TrainConfig.from_dict({**weights.config, "model": weights.network})
    info = RunInfo(
        config,
        weights.num_classes,
        weights.in_channels,
        list(weights.class_names),
        list(weights.mean),
        list(weights.std),
        weights.input_size,
        Path(f"weights:{weights.name}"),
        weights,
    )
    return LoadedRun(net, info)


def load_weights(net: nn.Module, state: dict, path: Path, model: str) -> None:
    """``load_state_dict(strict=True)``, with a one-line error instead of a key dump when they do not fit."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        what = "; ".join(
            f"{len(keys)} {label} (e.g. {keys[0]})"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong))
            if keys
        )
        raise CheckpointError(
            f"refusing {path}: its weights do not fit the {model} its settings describe ({what}); "
            "the file was altered or mixed with another run's"
        )
    net.load_state_dict(state, strict=True)


def check_config_matches(path: Path, model: str) -> None:
    """A checkpoint inside a run directory must name the network that the run's ``config.yaml`` names."""
    run = RunDir.of_checkpoint(path)
    if run is None or not run.config.is_file():
        return
    named = run.read_config().get("model")
    if named != model:
        raise CheckpointError(
            f"{path} holds a {model} but {run.config} names {named}; the run directory mixes two runs — "
            "use the checkpoint file directly or restore the matching config.yaml"
        )
