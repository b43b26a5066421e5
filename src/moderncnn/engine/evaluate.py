"""``evaluate(run)``: a trained run's accuracy on a split, per class, with its confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchmetrics

from moderncnn.engine.config import TrainConfig
from moderncnn.engine.datamodule import ImageDataModule
from moderncnn.engine.module import build_network
from moderncnn.engine.train import load_checkpoint


def load_network(checkpoint_path: Path) -> tuple[torch.nn.Module, dict]:
    """The network of a checkpoint in eval mode, and the checkpoint's hyper-parameters."""
    checkpoint = load_checkpoint(checkpoint_path)
    hparams = checkpoint["hyper_parameters"]
    config = TrainConfig.from_dict(hparams["config"])
    net = build_network(config, hparams["num_classes"], hparams["in_channels"], hparams["input_size"])
    prefix = "net."
    state = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    net.load_state_dict(state)
    return net.eval(), hparams


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

    def to_dict(self) -> dict:
        return {**self.__dict__, "worst_pairs": [list(p) for p in self.worst_pairs]}


def evaluate(
    run: str | Path,
    *,
    dataset: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    checkpoint: str = "best",
    device: str = "cpu",
) -> Evaluation:
    """Evaluate ``run``'s ``checkpoints/<checkpoint>.ckpt`` on ``split`` of its dataset (or ``dataset``)."""
    run = Path(run)
    net, hparams = load_network(run / "checkpoints" / f"{checkpoint}.ckpt")
    config = TrainConfig.from_dict(hparams["config"])
    if dataset is not None:
        config.dataset = dataset
    if data_dir is not None:
        config.data_dir = data_dir
    data = ImageDataModule(config, input_size=hparams["input_size"])
    data.setup("test")
    if data.dataset.num_classes != hparams["num_classes"]:
        raise ValueError(
            f"{config.dataset} has {data.dataset.num_classes} classes; the network knows {hparams['num_classes']}"
        )
    if split not in data.dataset.splits:
        raise ValueError(f"{config.dataset} has no {split!r} split; it has {', '.join(data.dataset.splits)}")
    data.mean, data.std = hparams["mean"], hparams["std"]  # the normalisation the network was trained with
    if config.resize is None and data.image_size != hparams["input_size"]:
        config.resize = hparams["input_size"]
    net = net.to(device)
    k = hparams["num_classes"]
    confusion = torchmetrics.ConfusionMatrix(task="multiclass", num_classes=k).to(device)
    with torch.no_grad():
        for x, y in data._loader(split, train=False, device=torch.device(device)):
            confusion.update(net(x.to(device)), y.to(device))
    matrix = confusion.compute().cpu()
    totals = matrix.sum(dim=1)
    per_class = (matrix.diag() / totals.clamp_min(1)).tolist()
    off = matrix.clone()
    off.fill_diagonal_(0)
    order = off.flatten().argsort(descending=True)[:5]
    names = hparams["class_names"]
    worst = [(names[i // k], names[i % k], int(off.flatten()[i])) for i in order.tolist() if off.flatten()[i] > 0]
    return Evaluation(
        split,
        int(totals.sum()),
        float(matrix.diag().sum() / totals.sum()),
        names,
        per_class,
        matrix.tolist(),
        worst,
    )
