"""Layer-by-layer shapes, parameter counts and FLOPs of a network, printed the way the textbook does."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


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
        raise ValueError(f"depth must be at least 1, got {depth}")
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

    Parameters and FLOPs are for 10 classes at the network's default input size and channels.

    Networks are built on PyTorch's ``meta`` device, which tracks shapes without allocating or computing,
    so listing even VGG-19 takes milliseconds.
    """
    from moderncnn.registry import VARIANTS, create_model, get_model_info, list_families, list_models

    families = [family] if family else list_families()
    rows = []
    names = [n for f in families for v in VARIANTS for n in list_models(f, variant=v)]
    for name in names:
        info = get_model_info(name)
        with torch.device("meta"):
            model = create_model(name)
        shape = (1, info.in_channels, info.input_size, info.input_size)
        result = summary(model, shape)
        rows.append(
            {**info.to_dict(), "input_shape": list(shape), "params": result.total_params, "flops": result.flops}
        )
    return rows
