"""Constraints on a trial's network, checked before it trains: the network is built from the registry on the meta
device (no weights allocated), for the dataset's classes, channels and input size, and its parameters counted."""

from __future__ import annotations

import functools
import random

from moderncnn.errors import ConfigError
from moderncnn.run.config import TrainConfig
from moderncnn.run.plan import input_size


@functools.cache
def _data_facts(dataset: str, data_dir: str | None) -> tuple[int, int, int | None]:
    """(classes, channels, image side) of a dataset, read once per process."""
    from moderncnn.data import load_dataset

    data = load_dataset(dataset, data_dir=data_dir)
    return data.num_classes, data.channels, data.image_size


def count_parameters(config: TrainConfig) -> int:
    """Parameters of ``config``'s network as the engine builds it for ``config``'s data."""
    import torch

    from moderncnn.run.checkpoint import build_network

    classes, channels, side = _data_facts(config.dataset, config.data_dir)
    size = input_size(config, side)
    with torch.device("meta"):
        net = build_network(config, classes, channels, size)  # a ModelError names an option it does not take
    return sum(p.numel() for p in net.parameters())


def violations(spec, config: TrainConfig) -> list[str]:
    """What ``config`` breaks of ``spec``'s constraints, one phrase each (empty: it may train)."""
    broken = []
    bounds = spec.constraints.get("params")
    if bounds:
        params = count_parameters(config)
        low, high = bounds.get("low", 0), bounds.get("high", float("inf"))
        if not low <= params <= high:
            broken.append(f"{params:,} parameters, outside [{low:,}, {high:,}]")
    return broken


def check_feasible(spec, samples: int) -> None:
    """Refuse a constraint that no trial can meet: none of the space's corners and ``samples`` random points meets
    it (the space's settings that do not shape the network stay at the base)."""
    from moderncnn.sweep.spec import corner_points

    rng = random.Random(0)
    shaping = [p for p in spec.space if p.model_kwarg]
    points = corner_points(spec) + [{p.name: p.draw(rng) for p in shaping} for _ in range(samples if shaping else 0)]
    counts = []
    for point in points or [{}]:
        config = spec.config(point)
        if not violations(spec, config):
            return
        counts.append(count_parameters(config))
    bounds = spec.constraints["params"]
    raise ConfigError(
        f"constraint 'params' {bounds} cannot be met: the {len(counts)} networks tried from the space have "
        f"{min(counts):,} to {max(counts):,} parameters; widen the constraint or the space"
    )
