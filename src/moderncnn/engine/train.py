"""``train(config)``: one run from settings to a run directory, with Lightning doing the loop.

A run directory holds ``config.yaml`` (every setting; ``--config`` repeats the run), ``metrics.csv``,
TensorBoard logs, ``checkpoints/last.ckpt`` and ``best.ckpt``, ``curves.png`` and ``results.json``.
"""

from __future__ import annotations

import json
import logging
import re
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import lightning as L
import torch

from moderncnn.engine.config import TrainConfig
from moderncnn.engine.datamodule import ImageDataModule
from moderncnn.engine.module import ImageClassifier
from moderncnn.engine.recorder import AtomicCheckpointIO, RunRecorder
from moderncnn.registry import get_model_info
from moderncnn.reports.curves import plot_curves


@dataclass
class RunResult:
    """What a finished run reports; ``str()`` is the textbook's summary line."""

    run_dir: Path
    train_loss: float
    train_acc: float
    test_acc: float
    examples_per_sec: float
    device: str
    rank: int = 0

    def __str__(self) -> str:
        return (
            f"loss {self.train_loss:.3f}, train acc {self.train_acc:.3f}, test acc {self.test_acc:.3f}, "
            f"{self.examples_per_sec:.1f} examples/sec on {self.device}"
        )


def new_run_dir(config: TrainConfig) -> Path:
    """``runs/<model>-<dataset>-<timestamp>``, with the dataset name made safe for a folder name."""
    dataset = re.sub(
        r"[^A-Za-z0-9_.-]+", "_", config.dataset.split(":", 1)[-1] if ":" in config.dataset else config.dataset
    )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.model}-{dataset}-{stamp}"


def load_checkpoint(path: Path) -> dict:
    """Read one of our checkpoints without executing anything from it (``weights_only=True``)."""
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"refusing {path}: not a plain moderncnn checkpoint (it cannot be loaded as tensors and plain types: "
            f"{type(err).__name__}); it may be tampered with or come from another program"
        ) from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not isinstance(hparams.get("config"), dict) or "state_dict" not in checkpoint:
        raise ValueError(f"refusing {path}: it is not a moderncnn training checkpoint (no model settings inside)")
    return checkpoint


def _quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (device lines, tips) out of the output; warnings still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # Epoch metrics are torchmetrics objects, already all-reduced across ranks by compute().
    warnings.filterwarnings("ignore", message=r".*sync_dist=True.*")
    # Only epoch-level metrics go to the logger, so the per-step logging interval does not matter.
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")


def _trainer(config: TrainConfig, run_dir: Path, recorder: RunRecorder, quiet: bool) -> L.Trainer:
    _quiet_lightning()
    callbacks = [recorder]
    if not quiet:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    try:
        from lightning.pytorch.loggers import TensorBoardLogger

        logger = TensorBoardLogger(run_dir, name="tensorboard", version="", default_hp_metric=False)
    except ModuleNotFoundError:  # tensorboard is optional for the library; the CLI installs it
        logger = False
    limit = config.limit_batches
    return L.Trainer(
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        precision=config.precision,
        max_epochs=config.epochs,
        limit_train_batches=limit,
        limit_val_batches=limit,
        limit_test_batches=limit,
        logger=logger,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # our loaders shard per rank themselves (data.loader.shard)
        enable_model_summary=False,
        enable_progress_bar=not quiet,
        default_root_dir=run_dir,
        log_every_n_steps=10,
    )


def train(config: TrainConfig | None, *, resume: str | Path | None = None, quiet: bool = False) -> RunResult:
    """Train, validate every epoch, test at the end; return the summary.

    Args:
        config: the settings (validated here again); ``None`` with ``resume``.
        resume: a run directory to continue from its ``checkpoints/last.ckpt``, with its own ``config.yaml``.
        quiet: no progress bar (for logs and CI).
    """
    ckpt_path = None
    if resume is not None:
        run_dir = Path(resume)
        ckpt_path = run_dir / "checkpoints" / "last.ckpt"
        if not ckpt_path.is_file():
            raise ValueError(f"cannot resume {run_dir}: it has no checkpoints/last.ckpt (is it a run directory?)")
        config = TrainConfig.load(run_dir / "config.yaml")
        # Refuse a tampered, foreign or mismatched checkpoint before any work.
        written_by = load_checkpoint(ckpt_path)["hyper_parameters"]["config"].get("model")
        if written_by != config.model:
            raise ValueError(f"checkpoint {ckpt_path} was written by {written_by}, not {config.model}; cannot resume")
    config.validate()
    if config.precision == "16-mixed" and (config.accelerator == "cpu" or not torch.cuda.is_available()):
        # Lightning would quietly switch to bf16; a setting that cannot be honoured is refused instead.
        raise ValueError(
            "precision 16-mixed needs a GPU (fp16 autocast is not supported on the CPU); use bf16-mixed or 32"
        )
    if resume is None:
        # A resumed run takes its weights from the checkpoint; a new one needs the file now, before any work.
        if config.pretrained not in (None, "imagenet") and not Path(config.pretrained).expanduser().is_file():
            raise ValueError(
                f"no weights file at {config.pretrained}; give a .pth state dict, or --pretrained alone for "
                "torchvision's ImageNet weights"
            )
        run_dir = Path(config.run_dir) if config.run_dir else new_run_dir(config)
        if (run_dir / "checkpoints" / "last.ckpt").exists():
            raise ValueError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another")
    config.run_dir = str(run_dir)

    L.seed_everything(config.seed, workers=True, verbose=False)
    info = get_model_info(config.model)
    data = ImageDataModule(config, input_size=info.input_size)
    data.setup("fit")
    native = data.dataset.image_size
    if config.resize is None and native is not None and native < info.min_input_size:
        # Images smaller than the network accepts (8 px digits for LeNet): upsample to the network's own size.
        config.resize = info.input_size
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.yaml")

    recorder = RunRecorder(run_dir, config.seed, on_epoch_end=plot_curves)
    trainer = _trainer(config, run_dir, recorder, quiet)
    model = ImageClassifier(
        config.to_dict(),
        num_classes=data.dataset.num_classes,
        in_channels=data.dataset.channels,
        class_names=data.dataset.classes,
        mean=data.mean,
        std=data.std,
        input_size=data.image_size,
        load_weights=ckpt_path is None,
    )
    if model.pretrained_report and not quiet and trainer.is_global_zero:
        print(model.pretrained_report)
    started = time.perf_counter()
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True if ckpt_path else None)
    if trainer.interrupted:
        raise KeyboardInterrupt
    metrics = {k: v.item() for k, v in trainer.callback_metrics.items()}
    # The textbook reports the final network's test accuracy; the UvA tutorial tests its best-validation one.
    best = run_dir / "checkpoints" / "best.ckpt"
    if config.test_checkpoint == "best" and best.is_file():
        test = trainer.test(model, datamodule=data, ckpt_path=best, verbose=False, weights_only=True)[0]
    else:
        test = trainer.test(model, datamodule=data, verbose=False)[0]
    device = str(trainer.strategy.root_device)
    result = RunResult(
        run_dir,
        train_loss=metrics["train_loss"],
        train_acc=metrics["train_acc"],
        test_acc=test["test_acc"],
        examples_per_sec=recorder.train_examples / max(recorder.train_seconds, 1e-9),
        device=device,
        rank=trainer.global_rank,
    )
    if trainer.is_global_zero:
        results = {
            "model": config.model,
            "dataset": config.dataset,
            "epochs": config.epochs,
            "params": sum(p.numel() for p in model.net.parameters()),
            "num_classes": data.dataset.num_classes,
            "input_shape": [data.dataset.channels, data.image_size, data.image_size],
            **{k: round(v, 6) for k, v in metrics.items()},
            "best_val_acc": round(recorder.best_acc, 6),
            "test_loss": round(test["test_loss"], 6),
            "test_acc": round(test["test_acc"], 6),
            "test_checkpoint": config.test_checkpoint,
            "examples_per_sec": round(result.examples_per_sec, 1),
            "train_seconds": round(recorder.train_seconds, 2),
            "wall_seconds": round(time.perf_counter() - started, 2),
            "device": device,
            "summary": str(result),
        }
        (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    return result
