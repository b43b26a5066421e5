"""``evaluate(run)``: a trained run's accuracy on a split, per class, with its confusion matrix."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchmetrics

from moderncnn.engine.datamodule import ImageDataModule
from moderncnn.engine.module import tta_logits
from moderncnn.errors import DataError, UsageError
from moderncnn.plotting import figure_path
from moderncnn.reports.confusion import plot_confusion
from moderncnn.run.checkpoint import load_run
from moderncnn.run.config import tta_views
from moderncnn.run.plan import data_options, open_dataset, trained_resize
from moderncnn.rundir import RunDir


@dataclass
class Evaluation:
    """Accuracy of a run on one split."""

    split: str
    images: int
    accuracy: float
    classes: list[str]
    per_class: list[float]
    confusion: list[list[int]]
    worst_pairs: list[tuple[str, str, int]] = field(default_factory=list)
    checkpoint: Path | None = None
    tta: bool = False
    views: str = "none"

    def to_dict(self) -> dict:
        values = {k: v for k, v in self.__dict__.items() if k != "checkpoint"}
        return {**values, "worst_pairs": [list(p) for p in self.worst_pairs]}

    def confusion_path(self, out: str | Path | None = None) -> Path:
        """``out``, or by default ``RUN/confusion-<split>.png`` in the run the checkpoint belongs to."""
        if out is not None:
            return figure_path(out, "confusion.png")
        run = RunDir.of_checkpoint(self.checkpoint) if self.checkpoint else None
        return run.confusion(self.split) if run else Path(f"confusion-{self.split}.png")

    def save_confusion(self, out: str | Path | None = None, title: str | None = None) -> Path:
        """Draw the confusion matrix into :meth:`confusion_path` ``(out)``; returns the path written."""
        title = title if title is not None else f"{self.checkpoint} ({self.split})"
        return plot_confusion(self.confusion, self.classes, self.confusion_path(out), title=title)


def evaluate(
    run: str | Path,
    *,
    dataset: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    checkpoint: str = "best",
    device: str = "cpu",
    tta: bool | str | None = None,
) -> Evaluation:
    """Evaluate ``run``'s ``checkpoints/<checkpoint>.ckpt`` on ``split`` of its dataset (or ``dataset``); with
    ``tta`` (default: as the run was tested; ``True`` is ``flip``) each image's logits are averaged over its views
    (:func:`~moderncnn.engine.module.tta_logits`)."""
    net, info = load_run(run, checkpoint)
    config = info.config
    if tta is True and tta_views(config.tta) != "none":
        tta = config.tta  # --tta repeats the run's own views
    views = tta_views(config.tta if tta is None else tta)
    preprocess = info.preprocess()  # the network's own input size and normalisation
    # The data this network is evaluated on (a folder of mixed sizes is cached at the trained size).
    source = dataclasses.replace(
        config,
        dataset=dataset if dataset is not None else config.dataset,
        data_dir=data_dir if data_dir is not None else config.data_dir,
        resize=preprocess.input_size,
    )
    images = open_dataset(source)
    if images.num_classes != info.num_classes:
        raise DataError(f"{source.dataset} has {images.num_classes} classes; the network knows {info.num_classes}")
    if split not in images.splits:
        raise UsageError(f"{source.dataset} has no {split!r} split; it has {', '.join(images.splits)}")
    resize = trained_resize(images.image_size, preprocess.input_size)
    # The network's size and normalisation, not the data's.
    options = {**data_options(source), "resize": resize, "mean": preprocess.mean, "std": preprocess.std}
    data = ImageDataModule(images, **options)
    data.setup("test")
    net = net.to(device)
    k = info.num_classes
    confusion = torchmetrics.ConfusionMatrix(task="multiclass", num_classes=k).to(device)
    with torch.no_grad():
        for x, y in data.loader(split, train=False, device=torch.device(device)):
            x = x.to(device)
            logits = tta_logits(net, x, views)
            confusion.update(logits, y.to(device))
    matrix = confusion.compute().cpu()
    totals = matrix.sum(dim=1)
    per_class = (matrix.diag() / totals.clamp_min(1)).tolist()
    off = matrix.clone()
    off.fill_diagonal_(0)
    order = off.flatten().argsort(descending=True)[:5]
    names = info.class_names
    worst = [(names[i // k], names[i % k], int(off.flatten()[i])) for i in order.tolist() if off.flatten()[i] > 0]
    return Evaluation(
        split,
        int(totals.sum()),
        float(matrix.diag().sum() / totals.sum()),
        names,
        per_class,
        matrix.tolist(),
        worst,
        info.checkpoint,
        views != "none",
        views,
    )
