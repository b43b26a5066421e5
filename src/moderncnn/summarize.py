"""Layer-by-layer shapes, parameter counts and FLOPs of a network, printed the way the textbook does."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from moderncnn.errors import UsageError
from moderncnn.registry import VARIANTS, create_model, get_model_info, list_families, list_models


@dataclass
class LayerRow:
    """One call of one module during the forward pass."""

    name: str
    type: str
    output_shape: list[int]
    params: int


@dataclass
class Summary:
    """What :func:`summary` found; ``str()`` gives the textbook's printout followed by the totals."""

    input_shape: list[int]
    layers: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    flops: int = 0

    def __str__(self) -> str:
        lines = [f"{row.type} output shape:\t {torch.Size(row.output_shape)}" for row in self.layers]
        lines += [
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"FLOPs (one forward pass at {'x'.join(map(str, self.input_shape))}): {self.flops:,}",
        ]
        return "\n".join(lines)

    __repr__ = __str__

    def to_dict(self) -> dict:
        return asdict(self)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` number of parameters."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one forward pass in eval mode, counted by ``torch.utils.flop_counter``.

    A multiply-add counts as two operations, so this is twice the "MACs" some papers quote.
    """
    return summary(model, input_shape).flops


def count_training_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one training step per image: a forward pass in training mode and the backward
    pass from a scalar loss, counted by ``torch.utils.flop_counter`` (frozen weights get no weight gradient, the
    input no gradient). Runs a batch of at least 2 (BatchNorm needs two values per channel in training); the model's
    BatchNorm statistics move, so count on a copy (e.g. built on the ``meta`` device) when they matter."""
    batch = max(2, input_shape[0])
    device = next(model.parameters()).device
    was_training = model.training
    model.train()
    try:
        counter = FlopCounterMode(display=False)
        with counter:
            out = model(torch.zeros((batch, *input_shape[1:]), device=device))
            (out[0] if isinstance(out, tuple) else out).float().sum().backward()
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return counter.get_total_flops() // batch


def _modules_at_depth(model: nn.Module, depth: int) -> list[tuple[str, nn.Module]]:
    """Submodules ``depth`` levels down (or leaves that are shallower), in registration order."""
    found = []

    def walk(module: nn.Module, prefix: str, level: int) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if level + 1 < depth and next(child.children(), None) is not None:
                walk(child, full, level + 1)
            else:
                found.append((full, child))

    walk(model, "", 0)
    return found


def summary(model: nn.Module, input_shape: tuple[int, ...], depth: int = 1) -> Summary:
    """Run one forward pass on zeros of ``input_shape`` and record what each submodule produced.

    Args:
        model: any ``nn.Module`` taking one image batch.
        input_shape: e.g. ``(1, 1, 224, 224)``.
        depth: 1 for the top-level children (the textbook's printouts), more to look inside them.

    Returns:
        A :class:`Summary`: one row per submodule call in the order they ran, parameter totals and FLOPs.
    """
    if depth < 1:
        raise UsageError(f"depth must be at least 1, got {depth}")
    device = next(model.parameters()).device
    rows: list[LayerRow] = []

    def record(name: str):
        def hook(module: nn.Module, args, output) -> None:
            shape = list(output.shape) if isinstance(output, torch.Tensor) else []
            rows.append(LayerRow(name, type(module).__name__, shape, sum(p.numel() for p in module.parameters())))

        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in _modules_at_depth(model, depth)]
    was_training = model.training
    model.eval()
    try:
        flop_counter = FlopCounterMode(display=False)
        with torch.no_grad(), flop_counter:
            model(torch.zeros(input_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    total, trainable = count_parameters(model)
    return Summary(list(input_shape), rows, total, trainable, flop_counter.get_total_flops())


def model_table(family: str | None = None) -> list[dict]:
    """One row per registered network (by family, then textbook, torchvision, cifar): facts, parameters, FLOPs.

    Parameters and FLOPs are for 10 classes at the network's default input size and channels. Networks are built on
    PyTorch's ``meta`` device (shapes without memory). Counting FLOPs for every network still takes seconds, so the
    table is cached under ``~/.cache/moderncnn`` keyed by the torch version and the source of the model code: a
    change to any network (or to this file) makes a new table.
    """
    families = [family] if family else list_families()
    names = [n for f in families for v in VARIANTS for n in list_models(f, variant=v)]
    cache = _table_cache()
    rows = _read_cache(cache)
    missing = [name for name in names if name not in rows]
    for name in missing:
        rows[name] = _table_row(name)
    if missing:
        _write_cache(cache, rows)
    return [rows[name] for name in names]


def _table_row(name: str) -> dict:
    info = get_model_info(name)
    with torch.device("meta"):
        model = create_model(name)
    shape = (1, info.in_channels, info.input_size, info.input_size)
    result = summary(model, shape)
    return {**info.to_dict(), "input_shape": list(shape), "params": result.total_params, "flops": result.flops}


def _table_cache() -> Path:
    source = hashlib.sha1(torch.__version__.encode())
    package = Path(__file__).parent
    for path in sorted([*package.joinpath("models").glob("*.py"), Path(__file__)]):
        source.update(path.name.encode() + path.read_bytes())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moderncnn"
    return root / f"model-table-{source.hexdigest()[:16]}.json"


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, rows: dict[str, dict]) -> None:
    try:  # a cache that cannot be written (read-only home) only costs time
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(rows))
        os.replace(tmp, path)
    except OSError:
        pass


def summarize(name: str, input_shape: tuple[int, ...] | None = None, num_classes: int = 10, depth: int = 1) -> Summary:
    """:func:`summary` of the registered network ``name`` at ``input_shape`` (default: one image at its own input).

    A network whose classifier is sized for one resolution (the textbook's flattening networks) is built for the
    requested square size, as the book's lazy layers would be; other networks take any size they accept.
    """
    info = get_model_info(name)
    in_channels = input_shape[1] if input_shape else info.in_channels
    kwargs = {}
    if input_shape and info.fixed_input_size and input_shape[2] == input_shape[3]:
        kwargs["input_size"] = input_shape[2]
    model = create_model(name, num_classes=num_classes, in_channels=in_channels, **kwargs)
    shape = input_shape or (1, in_channels, info.input_size, info.input_size)
    return summary(model, shape, depth=depth)
