"""An exponential moving average (EMA) of the weights, kept by Lightning's ``WeightAveraging`` callback.

The average is what validation, the test pass and the saved checkpoints see (the callback swaps it in; a checkpoint
keeps the live weights beside it, so a resumed run continues both). Its decay warms up as timm's ``ModelEmaV2`` and
torchvision's recipe intend for short runs: ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the first
steps' random weights do not linger in the average of a run of a few thousand steps.
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor


def ema_update(decay: float):
    """The ``multi_avg_fn`` of ``torch.optim.swa_utils.AveragedModel``: one EMA step over a group of tensors of one
    device and dtype (integer buffers, such as BatchNorm's batch counter, are copied)."""

    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        if not averaged[0].is_floating_point():
            torch._foreach_copy_(averaged, current)
            return
        n = float(num_averaged)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1 + n) / (10 + n)))

    return update


def ema_callback(decay: float) -> WeightAveraging:
    """A callback averaging the weights and buffers after every optimiser step with ``decay``."""
    return WeightAveraging(multi_avg_fn=ema_update(decay), use_buffers=True)
