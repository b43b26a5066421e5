"""The loss around trained weights along random directions (Li et al. 2018, "Visualizing the Loss Landscape").

Each direction has a Gaussian entry per weight, rescaled filter by filter to the norm of the trained filter it
perturbs (filter normalisation: a filter is an output channel of a convolution or a row of a linear layer), so
the picture does not depend on how each layer happens to be scaled. Biases and BatchNorm weights (1-D parameters)
are not perturbed, as in the authors' plots (``--xignore biasbn``). The network stays in evaluation mode, so
BatchNorm uses its stored statistics at every point, and the loss (the run's training criterion) is evaluated on a
fixed, seeded subset of the training split, preprocessed as in evaluation.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.func import functional_call

from moderncnn.errors import UsageError
from moderncnn.inspect.common import load, model_name
from moderncnn.plotting import pyplot, save_figure
from moderncnn.run.checkpoint import RunInfo


@dataclass
class Landscape:
    """Loss and accuracy on a grid: ``coords`` per axis, ``loss``/``accuracy`` of shape ``(P,)`` or ``(P, P)``."""

    coords: Tensor
    loss: Tensor
    accuracy: Tensor
    images: int
    seconds: float = 0.0
    csv: Path | None = None
    png: Path | None = None

    @property
    def centre(self) -> float:
        """The loss at the trained weights (the middle of the grid)."""
        middle = len(self.coords) // 2
        return float(self.loss[(middle,) * self.loss.dim()])


def random_directions(net: nn.Module, count: int = 2, seed: int = 0) -> list[dict[str, Tensor]]:
    """``count`` filter-normalised random directions, each a parameter name → tensor dict (zeros for 1-D ones).

    Drawn on the CPU from ``seed`` alone, so the same seed gives the same directions on any device.
    """
    generator = torch.Generator().manual_seed(seed)
    directions = []
    for _ in range(count):
        direction = {}
        for name, p in net.named_parameters():
            weight = p.detach().float().cpu()
            if weight.dim() <= 1:
                direction[name] = torch.zeros_like(weight)
                continue
            d = torch.randn(weight.shape, generator=generator)
            scale = weight.flatten(1).norm(dim=1) / (d.flatten(1).norm(dim=1) + 1e-10)
            direction[name] = d * scale.view(-1, *([1] * (weight.dim() - 1)))
        directions.append(direction)
    return directions


def loss_surface(
    net: nn.Module,
    x: Tensor,
    y: Tensor,
    directions: list[dict[str, Tensor]],
    coords: Tensor,
    *,
    criterion: nn.Module | None = None,
    batch_size: int = 256,
) -> tuple[Tensor, Tensor]:
    """Loss and accuracy at ``weights + a * d1 (+ b * d2)`` for every ``a`` (and ``b``) in ``coords``.

    The network itself is not changed: each point is evaluated with ``torch.func.functional_call``.
    """
    criterion = criterion or nn.CrossEntropyLoss()
    device = next(net.parameters()).device
    params = {name: p.detach() for name, p in net.named_parameters()}
    moved = [{name: d.to(device, params[name].dtype) for name, d in direction.items()} for direction in directions]
    grid = torch.cartesian_prod(*[coords] * len(directions)).reshape(-1, len(directions))
    losses, accuracies = [], []
    with torch.no_grad():
        for point in grid.tolist():
            shifted = {
                name: p + sum(c * d[name] for c, d in zip(point, moved, strict=True)) for name, p in params.items()
            }
            total, correct = 0.0, 0
            for start in range(0, len(x), batch_size):
                xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
                logits = functional_call(net, shifted, (xb,))
                total += float(criterion(logits.float(), yb)) * len(yb)
                correct += int((logits.argmax(dim=1) == yb).sum())
            losses.append(total / len(x))
            accuracies.append(correct / len(x))
    shape = (len(coords),) * len(directions)
    return torch.tensor(losses).reshape(shape), torch.tensor(accuracies).reshape(shape)


def training_subset(info: RunInfo, size: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``size`` images of the run's training split (chosen with ``seed``), preprocessed as in evaluation."""
    from moderncnn.data import Split, load_dataset

    config = info.config
    dataset = load_dataset(config.dataset, data_dir=config.data_dir, val_size=config.val_size, seed=config.seed)
    train = dataset.splits["train"]
    chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:size]
    part = train.subset(chosen)
    preprocess = info.preprocess()
    if isinstance(part, Split):
        return preprocess(part.images), part.labels
    items = [part[i] for i in range(len(part))]  # an image folder: decoded one file at a time, sizes differ
    return torch.cat([preprocess(image[None]) for image, _ in items]), torch.tensor([label for _, label in items])


def write_csv(landscape: Landscape, path: str | Path) -> Path:
    """The values: ``alpha, loss, accuracy`` per point, or ``alpha, beta, loss, accuracy``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    coords = landscape.coords.tolist()
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if landscape.loss.dim() == 1:
            writer.writerow(["alpha", "loss", "accuracy"])
            for a, loss, acc in zip(coords, landscape.loss.tolist(), landscape.accuracy.tolist(), strict=True):
                writer.writerow([f"{a:.6g}", f"{loss:.6g}", f"{acc:.6g}"])
        else:
            writer.writerow(["alpha", "beta", "loss", "accuracy"])
            for i, a in enumerate(coords):
                for j, b in enumerate(coords):
                    writer.writerow(
                        [f"{a:.6g}", f"{b:.6g}", f"{landscape.loss[i, j]:.6g}", f"{landscape.accuracy[i, j]:.6g}"]
                    )
    return path


def plot_landscape(landscape: Landscape, out: str | Path, *, title: str = "") -> Path:
    """A 1-D curve (loss, and accuracy on a second axis) or a 2-D contour plot of the loss (log-spaced levels)."""
    plt = pyplot()
    coords, loss = landscape.coords.numpy(), landscape.loss.numpy()
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    if loss.ndim == 1:
        ax.plot(coords, loss, color="tab:blue")
        ax.set(xlabel="alpha (filter-normalised direction)", ylabel="loss")
        twin = ax.twinx()
        twin.plot(coords, landscape.accuracy.numpy(), color="tab:orange", linestyle="--")
        twin.set_ylabel("accuracy", color="tab:orange")
    else:
        import numpy as np

        low, high = max(float(loss.min()), 1e-4), float(loss.max())
        levels = np.geomspace(low, max(high, low * 1.01), 25)
        contours = ax.contour(coords, coords, loss.T, levels=levels, cmap="viridis")  # rows of loss.T are beta
        ax.clabel(contours, contours.levels[::4], fontsize=7, fmt="%.2g")
        ax.plot([0], [0], marker="*", color="red", markersize=10)
        ax.set(xlabel="alpha", ylabel="beta", aspect="equal")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, out)


def plot_run_landscape(
    run_or_ckpt: str | Path,
    out: str | Path,
    *,
    dim: int = 2,
    points: int = 15,
    span: float = 1.0,
    subset: int = 256,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "cpu",
    checkpoint: str = "best",
) -> Landscape:
    """The loss landscape of a trained run: ``OUT`` (PNG) and the values beside it (``OUT`` with ``.csv``).

    Args:
        run_or_ckpt: a run directory or a ``.ckpt`` file.
        out: the PNG to write.
        dim: 1 (a curve) or 2 (a contour plot).
        points: points per axis, odd so the trained weights are one of them (2-D: ``points**2`` evaluations).
        span: the grid runs from ``-span`` to ``span`` along each direction.
        subset: training images the loss is averaged over.
        seed: seed of the directions and of the subset.
        batch_size: images per forward pass.
        device: where the network runs.
        checkpoint: ``best`` or ``last`` for a run directory.
    """
    if dim not in (1, 2):
        raise UsageError(f"dim must be 1 (a curve) or 2 (a contour plot), got {dim}")
    if points < 3 or points % 2 == 0:
        raise UsageError(f"points must be odd and at least 3, so the trained weights lie on the grid; got {points}")
    if not math.isfinite(span) or span <= 0 or subset < 1 or batch_size < 1:
        raise UsageError(
            f"span (a finite number), subset and batch size must be positive; got {span}, {subset}, {batch_size}"
        )
    from moderncnn.deploy.predict import check_device

    started = time.perf_counter()
    net, info = load(run_or_ckpt, checkpoint)
    net = net.to(check_device(device))
    x, y = training_subset(info, subset, seed)
    coords = torch.linspace(-span, span, points)
    coords[points // 2] = 0.0  # exactly the trained weights (linspace leaves ~1e-8 there)
    criterion = nn.CrossEntropyLoss(label_smoothing=info.config.label_smoothing)
    directions = random_directions(net, dim, seed)
    loss, accuracy = loss_surface(net, x, y, directions, coords, criterion=criterion, batch_size=batch_size)
    result = Landscape(coords, loss, accuracy, len(y), time.perf_counter() - started)
    result.csv = write_csv(result, Path(out).with_suffix(".csv"))
    options = ", ".join(f"{k}={v}" for k, v in (info.config.model_kwargs or {}).items())  # e.g. shortcut=none
    network = f"{model_name(net)} ({options})" if options else model_name(net)
    title = (
        f"{network}: loss along {dim} filter-normalised random direction{'s' if dim == 2 else ''}\n"
        f"{len(y)} training images, centre loss {result.centre:.3g}, {result.seconds:.0f} s"
    )
    result.png = plot_landscape(result, out, title=title)
    return result
