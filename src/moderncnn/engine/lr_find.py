"""``lr_find(config)``: the learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
Networks") through Lightning's ``Tuner.lr_find``.

A short run raises the rate exponentially from ``min_lr`` to ``max_lr`` over ``steps`` batches of the training
split, with the run's own network, optimiser, augmentation and precision, and records the (smoothed) loss at each
rate; it stops early once the loss diverges. The suggestion is Lightning's: the rate where the loss falls fastest.
The network's weights are not kept: the test only measures.
"""

from __future__ import annotations

import csv
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L

from moderncnn.engine.config import TrainConfig
from moderncnn.errors import TrainingError
from moderncnn.files import atomic_path
from moderncnn.plotting import check_figure_path, save_figure


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

    from moderncnn.engine.training import _quiet_lightning, classifier, prepare

    if not 0 < min_lr < max_lr:
        raise TrainingError(f"lr-find needs 0 < min_lr < max_lr, got {min_lr} and {max_lr}")
    if steps < 2:
        raise TrainingError(f"lr-find needs at least 2 steps, got {steps}")
    dataset_name = config.dataset.split(":")[0].replace("/", "-")
    plot_path = check_figure_path(out or Path("runs") / "lr-find" / f"{config.model}-{dataset_name}.png")
    config.validate()
    data, extra = prepare(config, quiet)
    model = classifier(config, data)
    _quiet_lightning()
    if quiet:  # the finder draws its own tqdm bar whatever the Trainer says; tqdm reads this switch
        os.environ["TQDM_DISABLE"] = "1"
    with tempfile.TemporaryDirectory(prefix="moderncnn-lr-find-") as scratch, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(num_training|max_steps|LR finder).*")
        trainer = L.Trainer(
            accelerator=config.accelerator,
            devices=1,
            precision=config.precision,
            max_epochs=config.epochs,
            logger=False,
            callbacks=list(extra),
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=not quiet,
            default_root_dir=scratch,
            num_sanity_val_steps=0,
            limit_val_batches=0,
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
