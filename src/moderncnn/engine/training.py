"""``train(config)``: one run from settings to a run directory, with Lightning doing the loop.

A run directory holds ``config.yaml`` (every setting; ``--config`` repeats the run), ``metrics.csv``,
TensorBoard logs, ``checkpoints/last.ckpt`` and ``best.ckpt``, ``curves.png`` and ``results.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import platform
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from moderncnn.engine.datamodule import ImageDataModule
from moderncnn.engine.graph import GraphLogger
from moderncnn.engine.module import ImageClassifier
from moderncnn.engine.peers import stop_for_lost_rank, watch_ranks
from moderncnn.engine.preflight import check_data, check_network, check_resumable
from moderncnn.engine.ranks import holder_notice, is_global_zero
from moderncnn.engine.recorder import AtomicCheckpointIO, RunRecorder
from moderncnn.errors import CheckpointError, ConfigError, UsageError
from moderncnn.files import ensure_writable
from moderncnn.reports.curves import plot_curves
from moderncnn.run.checkpoint import create_network, load_checkpoint, load_run
from moderncnn.run.config import TrainConfig, checkpoint_interval, tta_views
from moderncnn.run.plan import Plan, open_dataset, resolve
from moderncnn.run.speed import Speed, detect_hardware
from moderncnn.rundir import RunDir
from moderncnn.summarize import count_flops, count_training_flops

# Set by global rank 0 for the processes Lightning launches on the same node (they inherit its environment).
RUN_DIR_VARIABLE = "MODERNCNN_RUN_DIR"


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
    tta: str = "none"

    def __str__(self) -> str:
        tested = f" (with {self.tta} TTA)" if self.tta != "none" else ""
        return (
            f"loss {self.train_loss:.3f}, train acc {self.train_acc:.3f}, test acc {self.test_acc:.3f}{tested}, "
            f"{self.examples_per_sec:.1f} examples/sec on {self.device}"
        )


def _quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (device lines, tips) out of the output; warnings still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    # Epoch metrics are torchmetrics objects, already all-reduced across ranks by compute().
    warnings.filterwarnings("ignore", message=r".*sync_dist=True.*")
    # Only epoch-level metrics go to the logger, so the per-step logging interval does not matter.
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")


def make_trainer(
    plan: Plan,
    *,
    root: Path | str,
    callbacks: list,
    quiet: bool,
    logger=False,
    checkpoints: bool = True,
    **options,
) -> L.Trainer:
    """The one Trainer of a planned run (``train`` and ``lr_find`` both build theirs here): the plan's accelerator,
    devices, precision and length; ``options`` override Lightning's arguments (``lr_find``: one device, no
    validation)."""
    _quiet_lightning()
    values = {
        **plan.trainer_options(),
        "logger": logger,
        "callbacks": callbacks,
        "num_sanity_val_steps": 0,
        "use_distributed_sampler": False,  # our loaders shard per rank themselves (data.loader.shard)
        "enable_model_summary": False,
        "enable_progress_bar": not quiet,
        "enable_checkpointing": checkpoints,
        "default_root_dir": root,
        "log_every_n_steps": 10,
        **options,
    }
    return L.Trainer(**values)


def _trainer(plan: Plan, run: RunDir, recorder: RunRecorder, quiet: bool, extra=()) -> L.Trainer:
    callbacks = [recorder, GraphLogger(), *extra]
    if plan.settings["ema"]:
        from moderncnn.engine.averaging import ema_callback

        callbacks.append(ema_callback(plan.settings["ema"]))
    if not quiet:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    try:
        from lightning.pytorch.loggers import TensorBoardLogger

        logger = TensorBoardLogger(run.path, name=run.tensorboard.name, version="", default_hp_metric=False)
    except ModuleNotFoundError:  # tensorboard is optional for the library; the CLI installs it
        logger = False
    plugins = [AtomicCheckpointIO()]
    return make_trainer(plan, root=run.path, callbacks=callbacks, quiet=quiet, logger=logger, plugins=plugins)


def train(
    config: TrainConfig | None,
    *,
    resume: str | Path | None = None,
    epochs: int | None = None,
    quiet: bool = False,
    callbacks: tuple = (),
) -> RunResult:
    """Train, validate every epoch, test at the end; return the summary.

    The run directory is held exclusively while the run writes it (a lock file; a second process is refused). A run
    that fails before its first checkpoint removes the directory it created, so nothing half-made is left.

    Args:
        config: the settings (validated here again); ``None`` with ``resume``.
        resume: a run directory to continue from its ``checkpoints/last.ckpt``, with its own ``config.yaml``; a run
            that stopped before its first checkpoint starts again from its ``config.yaml``.
        epochs: with ``resume``, continue a run (finished or not) to this many epochs in all.
        quiet: no progress bar (for logs and CI).
        callbacks: more Lightning callbacks, called after the run's own (a sweep's pruning callback sees each epoch
            once its row and checkpoint are written).
    """
    if resume is None:
        if config is None:
            raise UsageError("train needs settings (a TrainConfig) or a run directory to resume")
        if epochs is not None:
            raise UsageError("epochs=... goes with resume; for a new run set it in the settings")
        _check_new(config)
        if config.run_dir:
            run = RunDir(config.run_dir)
        elif not is_global_zero() and os.environ.get(RUN_DIR_VARIABLE):
            run = RunDir(os.environ[RUN_DIR_VARIABLE])
        else:
            run = RunDir.new(config.model, config.dataset)
    else:
        run = RunDir(resume)
        if not run.config.is_file():
            raise CheckpointError(f"cannot resume {run}: it has no config.yaml (is it a run directory?)")
    created = not run.path.exists()
    rank_zero = is_global_zero()
    if rank_zero:
        ensure_writable(run.path, folder=True, need_bytes=1 << 24)  # a read-only or full location fails now
    with run.lock(warn=_warn) if rank_zero else contextlib.nullcontext():
        try:
            if resume is not None:
                config, ckpt_path = _resume_settings(run, epochs)
            else:
                if rank_zero and run.last.exists():  # the other ranks read nothing of the directory
                    raise ConfigError(f"{run} already holds a run; resume it with --resume {run} or choose another")
                ckpt_path = None
            config = dataclasses.replace(config, run_dir=str(run))
            try:
                with watch_ranks(config.devices, functools.partial(stop_for_lost_rank, run, rank_zero, created)):
                    return _fit(config, run, ckpt_path, quiet, callbacks)
            except SIGTERMException:
                # Lightning stops at the next step and raises a SystemExit with code 0, which a scheduler reads as
                # success. The recorder has said how to resume; the exit status is the shell's for SIGTERM.
                raise SystemExit(TERMINATED) from None
        except BaseException:
            if created and rank_zero and not run.last.exists():
                # Nothing to resume: do not leave a directory that only looks like a run.
                shutil.rmtree(run.path, ignore_errors=True)
            raise


TERMINATED = 128 + 15  # the exit status of a run stopped by SIGTERM (a scheduler's stop, a SLURM preemption)


def _check_new(config: TrainConfig) -> None:
    """What can be checked of new settings before anything is written."""
    config.validate()
    if config.precision == "16-mixed" and (config.accelerator == "cpu" or not torch.cuda.is_available()):
        # Lightning would quietly switch to bf16; a setting that cannot be honoured is refused instead.
        raise ConfigError(
            "precision 16-mixed needs a GPU (fp16 autocast is not supported on the CPU); use bf16-mixed or 32"
        )
    # A resumed run takes its weights from the checkpoint; a new one needs the file now, before any work.
    if config.pretrained not in (None, "imagenet") and not Path(config.pretrained).expanduser().is_file():
        raise ConfigError(
            f"no weights file at {config.pretrained}; give a .pth state dict, or --pretrained alone for "
            "torchvision's ImageNet weights"
        )


def _resume_settings(run: RunDir, epochs: int | None) -> tuple[TrainConfig, Path | None]:
    """The settings and checkpoint a resumed run continues from; ``epochs`` extends a run where that is honest."""
    config = TrainConfig.load(run.config)
    if not run.last.is_file():
        # Stopped before its first checkpoint (a failed start, or killed in epoch 1): start it from its settings.
        if epochs is not None:
            config = dataclasses.replace(config, epochs=epochs)
        _check_new(config)
        return config, None
    # Refuse a tampered, foreign or mismatched checkpoint before any work: its network, its weights, its settings.
    saved = load_checkpoint(run.last)["hyper_parameters"]["config"]
    check_resumable(config, saved, run.last)  # config.yaml still describes the weights (network, data, input)
    load_run(run.last)  # and the weights fit the network the checkpoint's settings describe
    if epochs is not None and epochs != config.epochs:
        if epochs < config.epochs:
            raise ConfigError(f"{run} trains for {config.epochs} epochs; --epochs can only extend it, got {epochs}")
        if config.schedule in ("cosine", "onecycle"):
            # Their rate at every step depends on the total length: a longer run would not continue this one.
            raise ConfigError(
                f"cannot extend {run} to {epochs} epochs: its {config.schedule} schedule was shaped for "
                f"{config.epochs}; start a new run with --epochs {epochs} (schedules none and multistep extend)"
            )
        config = dataclasses.replace(config, epochs=epochs)
        run.results.unlink(missing_ok=True)  # no longer the run's final figures
    elif run.is_finished:
        raise ConfigError(
            f"{run} finished all its {config.epochs} epochs (see {run.results}); evaluate it, or continue it with "
            f"--resume {run} --epochs N for more"
        )
    config.validate()
    return config, run.last


def speed_callbacks(speed: Speed, quiet: bool) -> list:
    """Apply the plan's thread choice and say once what was chosen; returns the Trainer callbacks it needs."""
    from moderncnn.engine.threads import ThreadGovernor

    if not quiet and is_global_zero():
        print(speed.reason)
    if speed.threads is not None:
        torch.set_num_threads(speed.threads)
        return []
    return [ThreadGovernor().callback()] if speed.adaptive_threads else []


@contextlib.contextmanager
def _run_dir_for_children(run: RunDir):
    """While fit starts: the processes Lightning launches for the other devices run this command again, with a copy
    of this environment; they take this run's directory (for the checkpoint they test) rather than a name of their
    own with another time in it. Removed afterwards, so that nothing else in this process sees it."""
    if not is_global_zero():
        yield
        return
    os.environ[RUN_DIR_VARIABLE] = str(run)
    try:
        yield
    finally:
        os.environ.pop(RUN_DIR_VARIABLE, None)


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def prepare(config: TrainConfig, quiet: bool) -> tuple[Plan, ImageDataModule, list]:
    """Seed, load the data and resolve the run's :class:`~moderncnn.run.plan.Plan` once (its input size,
    normalisation and ``auto`` speed settings); returns the plan, the data module built from it and the Trainer
    callbacks its speed choices need."""
    L.seed_everything(config.seed, workers=True, verbose=False)
    dataset = open_dataset(config)
    plan = resolve(config, dataset, detect_hardware(config.accelerator))
    data = ImageDataModule(dataset, **plan.data)
    data.setup("fit")
    return plan, data, speed_callbacks(plan.speed, quiet)


def planned_network(plan: Plan):
    """The planned network, freshly initialised (build it under ``torch.device("meta")`` for its shape alone)."""
    s = plan.settings
    size = (plan.num_classes, plan.in_channels, plan.input_size)
    return create_network(s["model"], *size, s["model_kwargs"], s["bn_momentum"], s["bn_eps"])


def classifier(plan: Plan, load_weights: bool = True) -> ImageClassifier:
    """The planned network as a LightningModule: the plan's classes, channels, normalisation, size and speed."""
    return ImageClassifier(**plan.module_options(), load_weights=load_weights)


def _fit(config: TrainConfig, run: RunDir, ckpt_path: Path | None, quiet: bool, callbacks: tuple = ()) -> RunResult:
    plan, data, extra = prepare(config, quiet)
    processes = config.devices * config.num_nodes
    limits = {"batch_size": config.batch_size, "val_size": config.val_size, "limit_batches": config.limit_batches}
    check_data(data.dataset, name=config.dataset, processes=processes, **limits)  # before anything is written
    with torch.device("meta"):  # the architecture only, no weights allocated
        check_network(planned_network(plan), model=config.model, batch_size=config.batch_size)
    if is_global_zero():
        run.path.mkdir(parents=True, exist_ok=True)
        plan.save(run.config)  # every setting, with what the plan decided
    elif notice := holder_notice():
        print(notice)

    every = checkpoint_interval(config.checkpoint_every)
    recorder = RunRecorder(run, config.seed, on_epoch_end=plot_curves, checkpoint_every=every)
    trainer = _trainer(plan, run, recorder, quiet, [*extra, *callbacks])
    model = classifier(plan, load_weights=ckpt_path is None)
    if ckpt_path is None:
        init_from_data(model, data)
    if model.pretrained_report and not quiet and trainer.is_global_zero:
        print(model.pretrained_report)
    started = time.perf_counter()
    with _run_dir_for_children(run):
        trainer.fit(model, datamodule=data, ckpt_path=ckpt_path, weights_only=True if ckpt_path else None)
    if trainer.interrupted:
        raise KeyboardInterrupt
    metrics = recorder.epoch_metrics  # the last epoch's, also when a resumed run had only its test left
    # The textbook reports the final network's test accuracy; the UvA tutorial tests its best-validation one.
    if config.test_checkpoint == "best" and run.best.is_file():
        test = trainer.test(model, datamodule=data, ckpt_path=run.best, verbose=False, weights_only=True)[0]
    else:
        test = trainer.test(model, datamodule=data, verbose=False)[0]
    device = str(trainer.strategy.root_device)
    result = RunResult(
        run.path,
        train_loss=metrics["train_loss"],
        train_acc=metrics["train_acc"],
        test_acc=test["test_acc"],
        examples_per_sec=recorder.train_examples / max(recorder.train_seconds, 1e-9),
        device=device,
        rank=trainer.global_rank,
        tta=tta_views(config.tta),
    )
    if trainer.is_global_zero:
        origin = run.read_origin()  # a `reproduce` run names its recipe and budget; a plain `train` has neither
        results = {
            "model": config.model,
            "dataset": config.dataset,
            "recipe": origin.get("recipe"),
            "budget": origin.get("budget"),
            "epochs": config.epochs,
            "params": sum(p.numel() for p in model.net.parameters()),
            "flops": _forward_flops(model, plan),
            "train_pflops": round(
                _training_flops(model, plan) * trainer.global_step * config.batch_size * trainer.world_size / 1e15, 6
            ),
            "num_classes": plan.num_classes,
            "input_shape": [plan.in_channels, plan.input_size, plan.input_size],
            **{k: round(v, 6) for k, v in metrics.items()},
            "best_val_acc": round(recorder.best_acc, 6),
            "test_loss": round(test["test_loss"], 6),
            "test_acc": round(test["test_acc"], 6),
            "test_checkpoint": config.test_checkpoint,
            "test_tta": result.tta != "none",
            "tta_views": result.tta,
            "test_weights": "ema" if config.ema else "trained",
            "examples_per_sec": round(result.examples_per_sec, 1),
            "train_seconds": round(recorder.train_seconds, 2),
            "wall_seconds": round(time.perf_counter() - started, 2),
            "device": device,
            "device_name": describe_device(trainer.strategy.root_device),
            "summary": str(result),
        }
        run.results.write_text(json.dumps(results, indent=2))
    return result


def init_from_data(model: ImageClassifier, data: ImageDataModule) -> None:
    """A fresh network that sets weights from training images (the registry's ``data_init_images``, e.g.
    airbench94's patch whitening) gets the first that many, as evaluation sees them, before training starts. Every
    process takes the same images, so every rank computes the same weights."""
    count = model.net.info.data_init_images
    if count:
        model.net.init_from_data(data.first_images(count))


def _forward_flops(model: ImageClassifier, plan: Plan) -> int:
    """FLOPs of one image through the network, counted on a fresh copy on the meta device (no weights allocated),
    so reports can show them without rebuilding the network."""
    with torch.device("meta"):
        net = model.build_network()
    return count_flops(net, (1, plan.in_channels, plan.input_size, plan.input_size))


def _training_flops(model: ImageClassifier, plan: Plan) -> int:
    """FLOPs of one training image (forward and backward, ``summarize.count_training_flops``), counted on a fresh
    copy on the meta device."""
    with torch.device("meta"):
        net = model.build_network()
    return count_training_flops(net, (1, plan.in_channels, plan.input_size, plan.input_size))


def describe_device(device: torch.device) -> str:
    """The device a run trained on, as a report states it: the GPU's name, or the CPU's architecture, cores and torch
    threads; with the versions of moderncnn and torch."""
    from moderncnn import __version__

    if device.type == "cuda":
        what = f"{device} ({torch.cuda.get_device_name(device)})"
    elif device.type == "cpu":
        what = f"cpu ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    else:
        what = str(device)
    return f"{what}; moderncnn {__version__}, torch {torch.__version__}"
