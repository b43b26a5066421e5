"""``ImageClassifier``: any registered network as a LightningModule (loss, accuracy, optimiser, schedule)."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import torch
import torchmetrics
from torch import Tensor, nn
from torchvision.transforms import v2

from moderncnn.engine.optim import (  # noqa: F401  (parameter_groups: public here too)
    OptimizerSettings,
    build_optimizer,
    lr_factor,
    parameter_groups,
)
from moderncnn.errors import ConfigError, TrainingError
from moderncnn.models.pretrained import backbone_parameters, fit_state_dict, load_pretrained
from moderncnn.registry import get_model_info
from moderncnn.run.checkpoint import create_network
from moderncnn.run.config import TrainConfig, tta_views


def initialise(model: nn.Module, scheme: str) -> None:
    """Re-initialise conv and linear weights: ``xavier`` (uniform, as the textbook's train_ch6) or ``kaiming``."""
    if scheme == "default":
        return
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def init_from_weights(net: nn.Module, model: str, name: str):
    """Load our published weights ``name`` into ``net`` (the registry's ``model``): every tensor, but a classifier for
    another class count keeps its initialisation (as torchvision's ImageNet weights are adapted)."""
    from moderncnn.weights import get_weights_info, load_state_dict

    weights = get_weights_info(name)
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_state_dict(weights).items()}
    return fit_state_dict(net, model, state, f"weights:{weights.name}")


def batch_mixer(mixup: float, cutmix: float, num_classes: int) -> v2.Transform | None:
    """MixUp and/or CutMix over whole batches (torchvision's ``v2``; one of the two per batch when both are on):
    ``(images, labels) -> (mixed images, label probabilities)``; ``None`` when both are off."""
    mixers = []
    if mixup > 0:
        mixers.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
    if cutmix > 0:
        mixers.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite; the message names the step."""


class ImageClassifier(L.LightningModule):
    """A registered network trained with cross-entropy; accuracy through torchmetrics.

    Its arguments are a plan's (``Plan.module_options()``): explicit values, nothing left to resolve.

    Args:
        config: the run's settings as a plain dict (``Plan.settings``, ``TrainConfig.to_dict()``'s form), saved in
            every checkpoint; read once here into the values the module keeps.
        num_classes: number of classes of the dataset.
        in_channels: image channels of the dataset.
        class_names: the dataset's class names, saved in every checkpoint for predict/export.
        mean, std: the normalisation the network was trained with, saved likewise.
        input_size: side of the images the network sees.
        load_weights: load the starting weights the settings name (not when resuming: the checkpoint has them).
        channels_last, compile: the memory format and compilation the plan chose.
    """

    def __init__(
        self,
        config: dict,
        num_classes: int,
        in_channels: int,
        class_names: list[str],
        mean: list[float],
        std: list[float],
        input_size: int,
        load_weights: bool = True,
        *,
        channels_last: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["load_weights", "channels_last", "compile"])
        # Read once into explicit values (defaults filled in for older checkpoints' settings): the module keeps no
        # settings object to consult.
        cfg = SimpleNamespace(**{**TrainConfig.defaults(), **config})
        self.model, self.freeze_backbone, self.tta = cfg.model, cfg.freeze_backbone, tta_views(cfg.tta)
        self.tta_val = self.tta if cfg.tta_val else "none"
        self.architecture = (cfg.model_kwargs, cfg.bn_momentum, cfg.bn_eps)
        self.optim = OptimizerSettings.of(cfg)
        self.net = self.build_network()
        initialise(self.net, cfg.init)
        if cfg.classifier_bias is not None:
            self.set_classifier_bias(cfg.classifier_bias)
        self.pretrained_report = ""
        if cfg.pretrained and load_weights:  # not when resuming: the checkpoint has the weights
            self.pretrained_report = str(load_pretrained(self.net, self.model, cfg.pretrained))
        elif cfg.init_from and load_weights:
            self.pretrained_report = str(init_from_weights(self.net, self.model, cfg.init_from))
        if self.freeze_backbone:
            for p in backbone_parameters(self.net, self.model):
                p.requires_grad_(False)
        self.channels_last = channels_last  # the plan's choices; a module built outside `train`: the plain network
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        if compile:
            self.net.compile()  # in place: the state-dict keys stay those of the network
        self.loss = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.mixer = batch_mixer(cfg.mixup, cfg.cutmix, num_classes)
        metric = {"task": "multiclass", "num_classes": num_classes}
        self.train_acc = torchmetrics.Accuracy(**metric)
        self.val_acc = torchmetrics.Accuracy(**metric)
        self.test_acc = torchmetrics.Accuracy(**metric)
        self.val_loss = torchmetrics.MeanMetric()
        self.test_loss = torchmetrics.MeanMetric()
        self.train_loss = torchmetrics.MeanMetric()

    def set_classifier_bias(self, value: float) -> None:
        path = get_model_info(self.model).classifier
        bias = getattr(self.net.get_submodule(path), "bias", None)
        if bias is None:
            raise ConfigError(f"classifier_bias: {self.model}'s classifier ({path}) has no bias; leave the setting out")
        nn.init.constant_(bias, value)

    def build_network(self) -> nn.Module:
        """A freshly initialised network of this module's architecture (call under ``torch.device("meta")`` to
        count FLOPs without allocating weights)."""
        h = self.hparams
        kwargs, momentum, eps = self.architecture
        return create_network(self.model, h["num_classes"], h["in_channels"], h["input_size"], kwargs, momentum, eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _logits(self, x: Tensor) -> Tensor:
        return self._outputs(x)[0]

    def _outputs(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.net(x)
        # A network with auxiliary classifiers returns (logits, *aux_logits) in training mode, logits alone in eval.
        return (out[0], [a for a in out[1:] if a is not None]) if isinstance(out, tuple) else (out, [])

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        target = y
        if self.mixer is not None:  # label probabilities of the blended images; accuracy counts the larger share
            x, target = self.mixer(x, y)
            y = target.argmax(dim=1)
        logits, aux = self._outputs(x)
        loss = self.loss(logits, target)
        if aux:  # the auxiliary losses, weighted as the network's paper says (the registry's aux_loss_weight)
            loss = loss + self.net.info.aux_loss_weight * sum(self.loss(a, target) for a in aux)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the loss became {loss.item()} at step {self.global_step} (epoch {self.current_epoch}, batch "
                f"{batch_idx}); lower the learning rate (now {self.optim.lr}) or check the data"
            )
        self.train_loss.update(loss.detach(), weight=len(y))
        self.train_acc.update(logits.detach(), y)
        # This batch's loss and accuracy for the progress bar (local to the rank: no synchronisation per step).
        batch_acc = (logits.detach().argmax(dim=1) == y).float().mean()
        self.log_dict(
            {"loss": loss.detach(), "acc": batch_acc}, prog_bar=True, on_step=True, on_epoch=False, logger=False
        )
        return loss

    def on_train_epoch_start(self) -> None:
        if self.freeze_backbone:
            # A frozen backbone keeps its BatchNorm statistics too: those layers stay in evaluation mode.
            classifier = get_model_info(self.model).classifier
            for name, m in self.net.named_modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and not name.startswith(classifier):
                    m.eval()

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        x, y = batch
        logits = self._logits(x)
        views = self.tta if stage == "test" else self.tta_val
        if views != "none":
            logits = tta_logits(self._logits, x, views, first=logits)
        getattr(self, f"{stage}_loss").update(self.loss(logits, y), weight=len(y))
        getattr(self, f"{stage}_acc").update(logits, y)

    def _log_epoch(self, stage: str) -> None:
        # torchmetrics all-reduces the sums across DDP ranks in compute(): each image counts once.
        for name in (f"{stage}_loss", f"{stage}_acc"):
            metric = getattr(self, name)
            self.log(name, metric.compute())
            metric.reset()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The running sums of the epoch so far: a run resumed inside an epoch reports the whole epoch's loss and
        # accuracy, as the uninterrupted run would.
        checkpoint["metric_states"] = {
            name: dict(m.metric_state) for name, m in self.named_modules() if isinstance(m, torchmetrics.Metric)
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("metric_states", {})
        for name, metric in self.named_modules():
            if isinstance(metric, torchmetrics.Metric) and name in saved:
                for key, value in saved[name].items():
                    setattr(metric, key, value.to(metric.device))

    def configure_optimizers(self):
        cfg = self.optim
        # The trainable parameters (the classifier only, when frozen), grouped by the rate and weight decay they get.
        optimizer = build_optimizer(self.net, cfg, get_model_info(self.model).classifier)
        # Optimiser steps per epoch on this rank, after --limit-batches and DDP sharding.
        steps = max(1, self.trainer.estimated_stepping_batches // cfg.epochs)
        if cfg.schedule == "onecycle":
            total = steps * cfg.epochs
            # Muon's momentum is its own setting: one-cycle cycles SGD's alone.
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer,
                max_lr=[g["lr"] for g in optimizer.param_groups],
                total_steps=total,
                cycle_momentum=cfg.optimizer != "muon",
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        factor = lr_factor(cfg.schedule, steps, cfg.epochs, cfg.warmup_epochs, cfg.milestones, cfg.gamma)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def tta_logits(forward, x: Tensor, views: str, first: Tensor | None = None) -> Tensor:
    """Test-time augmentation: ``forward``'s logits averaged over ``views`` of the batch ``x``.

    ``flip``: the image and its mirror, averaged. ``flip-shift`` (airbench94's): half that, plus a quarter each of
    the same pair shifted by one pixel up-left and down-right (borders reflected); six passes in all. ``first``:
    ``forward(x)`` when the caller has it already.
    """
    plain = forward(x) if first is None else first
    if views == "none":
        return plain
    mirrored = (plain + forward(x.flip(-1))) / 2
    if views == "flip":
        return mirrored
    h, w = x.shape[-2:]
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[..., :h, :w], padded[..., 2 : h + 2, 2 : w + 2]]
    pairs = [(forward(s) + forward(s.flip(-1))) / 2 for s in shifted]
    return mirrored / 2 + (pairs[0] + pairs[1]) / 4
