"""``lr_find(config)``: the learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
Networks") through Lightning's ``Tuner.lr_find``.

A short run raises the rate exponentially from ``min_lr`` to ``max_lr`` over ``steps`` batches of the training
split, with the run's own network, optimiser, augmentation and precision, and records the (smoothed) loss at each
rate; it stops early once the loss diverges. The suggestion is Lightning's: the rate where the loss falls fastest.
The network's weights are not kept: the test only measures.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from moderncnn.errors import TrainingError
from moderncnn.files import atomic_path
from moderncnn.plotting import check_figure_path, save_figure
from moderncnn.run.config import TrainConfig


@dataclass
class LRFindResult:
    """What the range test found: the rates tried, the smoothed loss at each, Lightning's suggestion (``None``
    when the loss never fell), and the files written."""

    lrs: list[float]
    losses: list[float]
    suggestion: float | None
    plot: Path
    table: Path

    def __str__(self) -> str:
        found = "no suggestion (the loss never fell)"
        if self.suggestion:
            found = f"suggested learning rate {self.suggestion:.3g}"
        return f"{found} ({len(self.lrs)} rates from {self.lrs[0]:.2g} to {self.lrs[-1]:.2g})"


@contextlib.contextmanager
def _tqdm_disabled(quiet: bool):
    """While the finder runs: its own tqdm bar off when ``quiet`` (tqdm reads ``TQDM_DISABLE``, whatever the
    Trainer says); the variable is left as it was found."""
    before = os.environ.get("TQDM_DISABLE")
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = before


def lr_find(
    config: TrainConfig,
    *,
    min_lr: float = 1e-6,
    max_lr: float = 1.0,
    steps: int = 100,
    out: str | Path | None = None,
    quiet: bool = False,
) -> LRFindResult:
    """Run the range test for ``config``'s network and data; write the loss-vs-rate plot (``out``, default
    ``runs/lr-find/<model>-<dataset>.png``) and its values as CSV beside it.

    Args:
        config: the settings the run would train with (its ``lr`` is ignored).
        min_lr, max_lr: the range of rates, raised exponentially.
        steps: training batches in the test (at most).
        out: the plot's path.
        quiet: no progress bar.
    """
    from lightning.pytorch.tuner import Tuner

    from moderncnn.engine.training import classifier, make_trainer, prepare

    if not 0 < min_lr < max_lr:
        raise TrainingError(f"lr-find needs 0 < min_lr < max_lr, got {min_lr} and {max_lr}")
    if steps < 2:
        raise TrainingError(f"lr-find needs at least 2 steps, got {steps}")
    dataset_name = config.dataset.split(":")[0].replace("/", "-")
    plot_path = check_figure_path(out or Path("runs") / "lr-find" / f"{config.model}-{dataset_name}.png")
    config.validate()
    plan, data, extra = prepare(config, quiet)
    model = classifier(plan)
    with (
        tempfile.TemporaryDirectory(prefix="moderncnn-lr-find-") as scratch,
        warnings.catch_warnings(),
        _tqdm_disabled(quiet),
    ):
        warnings.filterwarnings("ignore", message=r".*(num_training|max_steps|LR finder).*")
        trainer = make_trainer(
            plan,
            root=scratch,
            callbacks=list(extra),
            quiet=quiet,
            checkpoints=False,
            devices=1,
            num_nodes=1,
            strategy="auto",
            limit_train_batches=None,
            limit_val_batches=0,
            limit_test_batches=None,
        )
        finder = Tuner(trainer).lr_find(
            model, datamodule=data, min_lr=min_lr, max_lr=max_lr, num_training=steps, update_attr=False
        )
    if finder is None or not finder.results.get("lr"):
        raise TrainingError("lr-find recorded no steps; the training split may be smaller than one batch")
    lrs, losses = finder.results["lr"], finder.results["loss"]
    suggestion = finder.suggestion()
    fig = finder.plot(suggest=suggestion is not None, show=False)
    fig.axes[0].set_title(f"{config.model} on {config.dataset}: loss while the rate rises ({config.optimizer})")
    save_figure(fig, plot_path)
    table = plot_path.with_suffix(".csv")
    with atomic_path(table, sync=False) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["lr", "loss"])
        writer.writerows(zip(lrs, losses, strict=True))
    return LRFindResult(list(lrs), [float(v) for v in losses], suggestion, plot_path, table)
